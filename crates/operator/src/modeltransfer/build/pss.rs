//! Test helper: checks a pod spec against the Pod Security Standards "restricted" profile
//! (baseline rules included), as the PodSecurity admission controller would, so builder tests
//! fail before a cluster with `enforce: restricted` refuses the pod.
use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};

/// Volume types the restricted profile allows.
const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Sysctls the baseline profile allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
];

fn seccomp_ok(t: Option<&str>) -> bool {
    matches!(t, Some("RuntimeDefault" | "Localhost"))
}

/// Every rule the pod breaks, one line each (empty: the pod is admitted under "restricted").
pub fn violations(spec: &PodSpec) -> Vec<String> {
    let mut v = Vec::new();
    let psc = spec.security_context.clone().unwrap_or_default();
    if spec.host_network == Some(true) || spec.host_pid == Some(true) || spec.host_ipc == Some(true)
    {
        v.push("host namespaces".into());
    }
    for vol in spec.volumes.iter().flatten() {
        let json = serde_json::to_value(vol).expect("volume serializes");
        let kinds: Vec<&String> = json
            .as_object()
            .expect("object")
            .keys()
            .filter(|k| k.as_str() != "name")
            .collect();
        for k in kinds {
            if !ALLOWED_VOLUMES.contains(&k.as_str()) {
                v.push(format!("volume {} has restricted type {k}", vol.name));
            }
        }
    }
    for s in psc.sysctls.iter().flatten() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            v.push(format!("unsafe sysctl {}", s.name));
        }
    }
    if psc.run_as_user == Some(0) {
        v.push("pod runAsUser 0".into());
    }
    if psc
        .se_linux_options
        .as_ref()
        .is_some_and(|o| o.user.is_some() || o.role.is_some())
    {
        v.push("pod SELinux user/role set".into());
    }
    let pod_seccomp = psc.seccomp_profile.as_ref().map(|s| s.type_.as_str());
    if pod_seccomp == Some("Unconfined") {
        v.push("pod seccomp Unconfined".into());
    }
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    for c in containers {
        let sc: SecurityContext = c.security_context.clone().unwrap_or_default();
        let n = &c.name;
        if sc.privileged == Some(true) {
            v.push(format!("{n}: privileged"));
        }
        if sc.allow_privilege_escalation != Some(false) {
            v.push(format!("{n}: allowPrivilegeEscalation must be false"));
        }
        let non_root = sc.run_as_non_root.or(psc.run_as_non_root);
        if non_root != Some(true) {
            v.push(format!("{n}: runAsNonRoot must be true"));
        }
        if sc.run_as_user == Some(0) {
            v.push(format!("{n}: runAsUser 0"));
        }
        let seccomp = sc
            .seccomp_profile
            .as_ref()
            .map(|s| s.type_.as_str())
            .or(pod_seccomp);
        if !seccomp_ok(seccomp) {
            v.push(format!(
                "{n}: seccompProfile must be RuntimeDefault or Localhost"
            ));
        }
        let caps = sc.capabilities.clone().unwrap_or_default();
        if !caps.drop.iter().flatten().any(|d| d == "ALL") {
            v.push(format!("{n}: capabilities must drop ALL"));
        }
        for add in caps.add.iter().flatten() {
            if add != "NET_BIND_SERVICE" {
                v.push(format!("{n}: adds capability {add}"));
            }
        }
        if sc.proc_mount.as_deref().is_some_and(|p| p != "Default") {
            v.push(format!("{n}: procMount"));
        }
        if sc
            .windows_options
            .as_ref()
            .is_some_and(|w| w.host_process == Some(true))
        {
            v.push(format!("{n}: hostProcess"));
        }
        for p in c.ports.iter().flatten() {
            if p.host_port.is_some_and(|h| h != 0) {
                v.push(format!("{n}: hostPort"));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HostPathVolumeSource, Volume};

    #[test]
    fn catches_what_restricted_forbids() {
        let spec = PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "h".into(),
                host_path: Some(HostPathVolumeSource {
                    path: "/".into(),
                    type_: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let v = violations(&spec);
        assert!(v.iter().any(|m| m.contains("hostPath")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("allowPrivilegeEscalation")));
        assert!(v.iter().any(|m| m.contains("runAsNonRoot")));
        assert!(v.iter().any(|m| m.contains("seccomp")));
        assert!(v.iter().any(|m| m.contains("drop ALL")));
    }
}
