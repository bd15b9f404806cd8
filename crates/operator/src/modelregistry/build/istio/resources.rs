//! The Istio and Authorino kinds this cluster serves, and whether their absence withholds the
//! registry's pods. Its own file so the Istio builders and the Deployment share it without a circle.
use kube::ResourceExt;
use kube::api::ApiResource;
use serde_json::Value;

use super::super::input::BuildInput;
use crate::capabilities::{
    AUTHORINO_GROUP, Capabilities, ISTIO_NETWORKING_GROUP, ISTIO_SECURITY_GROUP,
};
use crate::modelregistry::kinds;

/// The API versions this cluster serves for each Istio/Authorino kind we create.
#[derive(Clone, Debug)]
pub struct IstioResources {
    pub virtual_service: ApiResource,
    pub destination_rule: ApiResource,
    pub gateway: ApiResource,
    pub authorization_policy: ApiResource,
    pub auth_config: ApiResource,
}

impl IstioResources {
    /// Resolves every kind, or names the API groups that are missing or serve no version we know.
    pub fn resolve(caps: &Capabilities) -> Result<IstioResources, Vec<String>> {
        let vs = kinds::istio_networking(caps, "VirtualService", "virtualservices");
        let dr = kinds::istio_networking(caps, "DestinationRule", "destinationrules");
        let gw = kinds::istio_networking(caps, "Gateway", "gateways");
        let ap = kinds::authorization_policy(caps);
        let ac = kinds::auth_config(caps);
        match (vs, dr, gw, ap, ac) {
            (
                Some(virtual_service),
                Some(destination_rule),
                Some(gateway),
                Some(authorization_policy),
                Some(auth_config),
            ) => Ok(IstioResources {
                virtual_service,
                destination_rule,
                gateway,
                authorization_policy,
                auth_config,
            }),
            (vs, _, _, ap, ac) => {
                let mut missing = Vec::new();
                for (group, found) in [
                    (ISTIO_NETWORKING_GROUP, vs.is_some()),
                    (ISTIO_SECURITY_GROUP, ap.is_some()),
                    (AUTHORINO_GROUP, ac.is_some()),
                ] {
                    if !found {
                        missing.push(describe_missing(caps, group));
                    }
                }
                Err(missing)
            }
        }
    }
}

fn describe_missing(caps: &Capabilities, group: &str) -> String {
    if caps.has(group) {
        format!("{group} (no supported version served)")
    } else {
        group.to_string()
    }
}

/// Why the registry must run no pods, if it must: `spec.istio` asks for mesh authentication this
/// cluster cannot provide. The mesh authenticates on the registry's own ports (the injected
/// sidecar plus the AuthorizationPolicy), so there is no separate authenticated port to expose
/// instead; any running pod would serve the plain REST port through the Service.
pub fn withheld(input: &BuildInput) -> Option<String> {
    input.mr.spec.istio.as_ref()?;
    IstioResources::resolve(input.caps).err().map(|_| {
        format!(
            "Deployment {} is scaled to zero until Istio and Authorino are available, so the \
             registry is never served without authentication",
            input.mr.name_any()
        )
    })
}

/// An object's metadata as the JSON of an untyped child.
pub fn meta_json(meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Value {
    serde_json::to_value(meta).expect("ObjectMeta serializes")
}
