//! Pod security every controller's containers share: the operator's pods run under the
//! restricted Pod Security Standard, so each container it builds starts from one hardened
//! security context (a Job's container as much as a registry's).
use k8s_openapi::api::core::v1::{
    Capabilities as LinuxCapabilities, SeccompProfile, SecurityContext,
};

/// A container hardened for the restricted Pod Security Standard.
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(LinuxCapabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}
