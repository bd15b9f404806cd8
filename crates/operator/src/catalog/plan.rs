//! The *build* step: from a [`Valid`] Catalog, through the pure builders of [`super::build`],
//! to what the apply step hands the shared layer ([`Planned`]): each object the catalog
//! applies on every reconcile as a [`Child`] labelled with its parent (the labels the shared
//! claim, prune and finalizer select by), and apart from them what is only ever created or
//! amended in place (the user ConfigMaps, the PostgreSQL Secret, the shared ReferenceGrant).
//! Pure: what exists was read by the dereference step. The builders cannot fail, so neither
//! can this step (it has no error type).
//!
//! The labels go on object metadata only: selectors and the pod template stay as the Go
//! operator wrote them, so taking over its objects changes no selector and restarts no pod.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ApiResource;
use kube::{Resource, ResourceExt};
use mro_api::catalog::Catalog;

use super::build::sources::{self, SourcesParseError};
use super::build::{self as builders, Desired, names, postgres};
use super::settings::CatalogSettings;
use super::validate::Valid;
use crate::kube_ext::child::{Child, ChildKey, ManagedKind, Parent};

/// The parent kind in the children's labels.
pub const KIND: &str = "Catalog";

/// The parent the catalog's children name.
pub fn parent(catalog: &Catalog) -> Parent {
    Parent::new(
        KIND,
        &catalog.namespace().unwrap_or_default(),
        &catalog.name_any(),
    )
}

/// What one reconcile applies and creates.
#[derive(Debug)]
pub struct Planned {
    /// Applied (server-side) on every reconcile, labelled with the parent.
    pub applied: Vec<Child>,
    /// The user ConfigMaps: created when absent, else only migrated (see
    /// [`sources::without_retired_source`]).
    pub user_sources: Vec<UserSourceWrite>,
    /// User ConfigMaps whose document cannot be migrated: reported, left as they are.
    pub unreadable_sources: Vec<SourcesParseError>,
    /// The PostgreSQL Secret's write (`None`: nothing to write).
    pub postgres_secret: Option<SecretWrite>,
    /// The shared ReferenceGrant, created when absent (gateway mode).
    pub reference_grant: Option<Child>,
    /// The user ConfigMaps as built (before comparing with what exists).
    user_sources_built: Vec<ConfigMap>,
}

impl Planned {
    /// Keys of every applied child: what the prune keeps.
    pub fn keys(&self) -> std::collections::BTreeSet<ChildKey> {
        self.applied.iter().map(Child::key).collect()
    }
}

fn labelled(mut child: Child, parent: &Parent) -> Child {
    child.object.labels_mut().extend(parent.labels());
    child
}

/// A write of a user ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub enum UserSourceWrite {
    /// Absent: created with its empty list.
    Create(Box<ConfigMap>),
    /// Present with `default_catalog` entries: `sources.yaml` replaced by this document.
    Migrate { name: String, document: String },
}

/// A write of the PostgreSQL Secret (created once, its password never rotated).
#[derive(Clone, Debug, PartialEq)]
pub enum SecretWrite {
    Create(Box<Secret>),
    /// Present but lacking keys, Go's labels or the Catalog's owner reference: only these are
    /// written, on the version that was read.
    Amend {
        amend: postgres::SecretAmend,
        resource_version: Option<String>,
    },
}

/// The build step.
pub fn build(valid: &Valid, settings: &CatalogSettings) -> Planned {
    let input = valid.input(settings);
    let desired = builders::desired(&input);
    let read = &valid.read;
    let secret = (!settings.skip_db_creation)
        .then(|| match &read.postgres_secret {
            None => Some(SecretWrite::Create(Box::new(postgres::secret(
                &input,
                &read.new_password,
            )))),
            Some(existing) => {
                let amend = postgres::amend(&input, existing, || read.new_password.clone());
                (!amend.is_empty()).then(|| SecretWrite::Amend {
                    amend,
                    resource_version: existing.resource_version(),
                })
            }
        })
        .flatten();
    let mut planned = plan(&read.catalog, desired, secret);
    let (writes, unreadable) = user_source_writes(&planned.user_sources_built, &read.user_sources);
    planned.user_sources = writes;
    planned.unreadable_sources = unreadable;
    planned
}

/// What to write of each user ConfigMap, given those that exist.
pub fn user_source_writes(
    built: &[ConfigMap],
    existing: &BTreeMap<String, ConfigMap>,
) -> (Vec<UserSourceWrite>, Vec<SourcesParseError>) {
    let mut writes = Vec::new();
    let mut unreadable = Vec::new();
    for cm in built {
        let name = cm.name_any();
        let Some(found) = existing.get(&name) else {
            writes.push(UserSourceWrite::Create(Box::new(cm.clone())));
            continue;
        };
        let doc = found
            .data
            .as_ref()
            .and_then(|d| d.get(names::SOURCES_KEY))
            .cloned()
            .unwrap_or_default();
        match sources::without_retired_source(&name, &doc) {
            Ok(None) => {}
            Ok(Some(document)) => writes.push(UserSourceWrite::Migrate { name, document }),
            Err(e) => unreadable.push(e),
        }
    }
    (writes, unreadable)
}

/// Everything `desired` holds, in the Go controller's order of applies.
fn plan(catalog: &Catalog, desired: Desired, postgres_secret: Option<SecretWrite>) -> Planned {
    let parent = parent(catalog);
    let d = desired;
    let mut applied = vec![
        Child::typed(&d.service_account),
        Child::typed(&d.default_sources),
        Child::typed(&d.deployment),
        Child::typed(&d.service),
        Child::typed(&d.role),
        Child::typed(&d.role_binding),
        Child::typed(&d.admin_role),
    ];
    applied.extend(d.admin_role_binding.as_ref().map(Child::typed));
    if let Some(pg) = &d.postgres {
        applied.push(Child::typed(&pg.deployment));
        applied.push(Child::typed(&pg.service));
        applied.push(Child::typed(&pg.network_policy));
    }
    let mut reference_grant = None;
    if let Some(gw) = d.gateway {
        applied.push(Child::dynamic(http_route_resource(), gw.http_route));
        reference_grant = Some(Child::dynamic(
            reference_grant_resource(),
            gw.reference_grant,
        ));
    }
    applied.extend(d.route.map(|r| Child::dynamic(route_resource(), r)));
    applied.extend(d.route_network_policy.as_ref().map(Child::typed));
    applied.push(Child::typed(&d.proxy_config));
    applied.push(Child::typed(&d.auth_delegator));
    Planned {
        applied: applied.into_iter().map(|c| labelled(c, &parent)).collect(),
        user_sources_built: d.user_sources,
        user_sources: Vec::new(),
        unreadable_sources: Vec::new(),
        postgres_secret,
        reference_grant,
    }
}

/// The wave of a child: what refers comes after what it refers to (a RoleBinding after its
/// Role, the Deployments after their ServiceAccount, ConfigMaps and Services), the Route and
/// HTTPRoute after the Service they route to.
pub fn wave_of(child: &Child) -> usize {
    match child.resource.kind.as_str() {
        "Route" | "HTTPRoute" => 3,
        "Deployment" => 2,
        k if k.ends_with("RoleBinding") => 1,
        _ => 0,
    }
}

/// The number of waves of [`wave_of`].
pub const WAVES: usize = 4;

pub fn route_resource() -> ApiResource {
    ApiResource {
        group: "route.openshift.io".into(),
        version: "v1".into(),
        api_version: "route.openshift.io/v1".into(),
        kind: "Route".into(),
        plural: "routes".into(),
    }
}

pub fn http_route_resource() -> ApiResource {
    let g = super::build::openshift::GATEWAY_API_GROUP;
    ApiResource {
        group: g.into(),
        version: "v1".into(),
        api_version: format!("{g}/v1"),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

pub fn reference_grant_resource() -> ApiResource {
    let g = super::build::openshift::GATEWAY_API_GROUP;
    ApiResource {
        group: g.into(),
        version: "v1beta1".into(),
        api_version: format!("{g}/v1beta1"),
        kind: "ReferenceGrant".into(),
        plural: "referencegrants".into(),
    }
}

fn kind<K: Resource<DynamicType = ()>>(in_parent_namespace: bool, namespaced: bool) -> ManagedKind {
    ManagedKind {
        resource: ApiResource::erase::<K>(&()),
        namespaced,
        in_parent_namespace,
    }
}

/// The kinds the catalog's labelled children may have, for the prune and the finalizer.
/// Route only on OpenShift, HTTPRoute only where the Gateway API is served.
pub fn managed_kinds(openshift: bool, gateway_api: bool) -> Vec<ManagedKind> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Service, ServiceAccount};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
    let mut kinds = vec![
        kind::<ServiceAccount>(true, true),
        kind::<ConfigMap>(true, true),
        kind::<Deployment>(true, true),
        kind::<Service>(true, true),
        kind::<Role>(true, true),
        kind::<RoleBinding>(true, true),
        kind::<NetworkPolicy>(true, true),
        kind::<ClusterRoleBinding>(false, false),
    ];
    if openshift {
        kinds.push(ManagedKind {
            resource: route_resource(),
            namespaced: true,
            in_parent_namespace: true,
        });
    }
    if gateway_api {
        kinds.push(ManagedKind {
            resource: http_route_resource(),
            namespaced: true,
            in_parent_namespace: false,
        });
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::build::{self, CatalogInput};
    use crate::catalog::settings::CatalogSettings;
    use crate::kube_ext::child::PARENT_KIND_LABEL;

    fn catalog() -> Catalog {
        let mut c = Catalog::new("catalog", Default::default());
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    #[test]
    fn applied_children_name_their_parent_and_selectors_stay_as_go_wrote_them() {
        let c = catalog();
        let settings = CatalogSettings::for_tests();
        let input = CatalogInput {
            catalog: &c,
            settings: &settings,
            openshift: true,
            domain: Some("apps.example".into()),
            admin_groups: vec!["admins".into()],
            labeled_sources: vec![],
        };
        let desired = build::desired(&input);
        let selector = desired.deployment.spec.as_ref().unwrap().selector.clone();
        let planned = plan(&c, desired, None);
        for child in &planned.applied {
            assert_eq!(
                child
                    .object
                    .labels()
                    .get(PARENT_KIND_LABEL)
                    .map(String::as_str),
                Some(KIND),
                "{}",
                child.name()
            );
        }
        let dep = planned
            .applied
            .iter()
            .find(|c| c.resource.kind == "Deployment" && c.name() == names::NAME)
            .unwrap();
        let dep: k8s_openapi::api::apps::v1::Deployment = dep.to_typed();
        assert_eq!(dep.spec.as_ref().unwrap().selector, selector);
        let template = dep.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        assert!(!template.contains_key(PARENT_KIND_LABEL));
        // User ConfigMaps are never applied (nor pruned).
        assert!(
            planned
                .applied
                .iter()
                .all(|c| !c.name().ends_with("-catalog-sources")
                    || c.name() == names::DEFAULT_SOURCES)
        );
        let (writes, _) = user_source_writes(&planned.user_sources_built, &BTreeMap::new());
        assert_eq!(writes.len(), 3);
        assert!(
            writes
                .iter()
                .all(|w| matches!(w, UserSourceWrite::Create(_)))
        );
        // An existing one is never overwritten: only a retired source is migrated away, and
        // an unreadable document is reported and left alone.
        let mut existing = BTreeMap::new();
        let with = |name: &str, doc: &str| ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                names::SOURCES_KEY.to_string(),
                doc.to_string(),
            )])),
            ..Default::default()
        };
        existing.insert(
            names::USER_MODEL_SOURCES.to_string(),
            with(
                names::USER_MODEL_SOURCES,
                "catalogs:\n- id: default_catalog\n  name: d\n- id: mine\n  name: m\n",
            ),
        );
        existing.insert(
            names::USER_MCP_SOURCES.to_string(),
            with(names::USER_MCP_SOURCES, "mcp_catalogs: []"),
        );
        existing.insert(
            names::USER_AGENT_SOURCES.to_string(),
            with(names::USER_AGENT_SOURCES, "nonsense: ["),
        );
        let (writes, unreadable) = user_source_writes(&planned.user_sources_built, &existing);
        assert_eq!(writes.len(), 1, "{writes:?}");
        match &writes[0] {
            UserSourceWrite::Migrate { name, document } => {
                assert_eq!(name, names::USER_MODEL_SOURCES);
                assert!(document.contains("mine") && !document.contains("default_catalog"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(unreadable.len(), 1);
        assert_eq!(unreadable[0].config_map, names::USER_AGENT_SOURCES);
        // Waves: bindings after roles, Deployments after the rest, routes last.
        let wave = |kind: &str| {
            planned
                .applied
                .iter()
                .filter(|c| c.resource.kind == kind)
                .map(wave_of)
                .next()
                .unwrap()
        };
        assert!(wave("Role") < wave("RoleBinding"));
        assert!(wave("ServiceAccount") < wave("Deployment"));
        assert!(wave("Deployment") < wave("Route"));
        assert!(planned.applied.iter().all(|c| wave_of(c) < WAVES));
    }
}
