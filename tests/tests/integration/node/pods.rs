//! Pod-level behaviour that only a kubelet decides: the image's user against `runAsNonRoot`, a
//! read-only root filesystem beside a writable scratch volume, Secret/ConfigMap/projected-token files
//! with their items and modes, Service names through the cluster DNS and kube-proxy, and our images
//! starting at all.
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Secret, Service};
use kube::api::{Api, PostParams};
use mro_tests::http_files::HttpFileServer;
use mro_tests::node::pods::{logs, pod, run_to_end, terminated, wait_for_refusal};
use serde_json::json;

use super::NodeNs;

const RUN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn a_restricted_pod_is_scheduled_runs_and_its_log_is_read_from_the_kubelet() {
    if mro_tests::node::skip_when_switched_off(
        "a_restricted_pod_is_scheduled_runs_and_its_log_is_read_from_the_kubelet",
    ) {
        return;
    }
    let t = NodeNs::new("node-basic").await;
    let p = pod(
        "hello",
        &t.node.images.busybox,
        &[
            "/bin/sh",
            "-c",
            "echo uid=$(id -u) gid=$(id -g); echo hello from the node",
        ],
        json!({}),
    );
    let done = run_to_end(&t.client, &t.ns, &p, RUN).await.unwrap();
    let spec = done.spec.clone().unwrap();
    assert_eq!(
        spec.node_name.as_deref(),
        Some(t.node.env.node_name.as_str()),
        "placed by kube-scheduler"
    );
    let st = done.status.clone().unwrap();
    assert_eq!(
        st.phase.as_deref(),
        Some("Succeeded"),
        "{st:#?}\n{}",
        t.node.describe()
    );
    let ip: std::net::Ipv4Addr = st.pod_ip.clone().unwrap().parse().unwrap();
    assert_eq!(
        ip.octets()[..3],
        [10, 214, t.node.env.slot as u8],
        "a bridge address: {ip}"
    );
    let log = logs(&t.client, &t.ns, "hello").await.unwrap();
    assert!(
        log.contains("uid=65532 gid=65532"),
        "the image's user: {log}"
    );
    assert!(log.contains("hello from the node"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_running_as_root_is_refused_under_run_as_non_root() {
    if mro_tests::node::skip_when_switched_off(
        "an_image_running_as_root_is_refused_under_run_as_non_root",
    ) {
        return;
    }
    let t = NodeNs::new("node-nonroot").await;
    let p = pod(
        "root-image",
        &t.node.images.model_sync_root,
        &["/model-sync", "--help"],
        json!({}),
    );
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &p)
        .await
        .unwrap();
    let w = wait_for_refusal(&t.client, &t.ns, "root-image", RUN)
        .await
        .unwrap();
    assert_eq!(
        w.reason.as_deref(),
        Some("CreateContainerConfigError"),
        "{w:?}"
    );
    assert!(
        w.message
            .as_deref()
            .unwrap_or("")
            .contains("runAsNonRoot and image will run as root"),
        "{w:?}"
    );
    // The same filesystem with the image's non-root user runs.
    let ok = pod(
        "nonroot-image",
        &t.node.images.model_sync,
        &["/model-sync", "--help"],
        json!({}),
    );
    let done = run_to_end(&t.client, &t.ns, &ok, RUN).await.unwrap();
    assert_eq!(
        terminated(&done).map(|s| s.exit_code),
        Some(0),
        "{:#?}\n{}",
        done.status,
        t.node.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_root_filesystem_keeps_the_scratch_volume_writable() {
    if mro_tests::node::skip_when_switched_off(
        "a_read_only_root_filesystem_keeps_the_scratch_volume_writable",
    ) {
        return;
    }
    let t = NodeNs::new("node-rofs").await;
    let script = "if touch /rootfs-probe 2>/dev/null; then echo ROOT-WRITABLE; else echo root-read-only; fi; \
                  echo data >/scratch/file && cat /scratch/file";
    let p = pod(
        "rofs",
        &t.node.images.busybox,
        &["/bin/sh", "-c", script],
        json!({
            "containers": [{ "securityContext": { "readOnlyRootFilesystem": true },
                             "volumeMounts": [{ "name": "scratch", "mountPath": "/scratch" }] }],
            "volumes": [{ "name": "scratch", "emptyDir": {} }]
        }),
    );
    let done = run_to_end(&t.client, &t.ns, &p, RUN).await.unwrap();
    let log = logs(&t.client, &t.ns, "rofs").await.unwrap();
    assert_eq!(terminated(&done).map(|s| s.exit_code), Some(0), "{log}");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["root-read-only", "data"],
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_configmap_and_projected_token_files_have_their_items_and_modes() {
    if mro_tests::node::skip_when_switched_off(
        "secret_configmap_and_projected_token_files_have_their_items_and_modes",
    ) {
        return;
    }
    let t = NodeNs::new("node-volumes").await;
    let secret: Secret = serde_json::from_value(json!({ "metadata": { "name": "creds" },
        "stringData": { "token": "s3cr3t", "unused": "never-mounted" } }))
    .unwrap();
    Api::<Secret>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": "settings" },
        "data": { "a.json": "{\"a\":1}", "b.txt": "bee" } }))
    .unwrap();
    Api::<ConfigMap>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let script = "cd /v; for f in secret/creds/token config/a.json config/sub/b.txt token/sa-token; do \
          echo \"$f $(stat -L -c %a $f) $(head -c 12 $f)\"; done; \
        ls secret/creds; test -e secret/creds/unused && echo UNUSED-PRESENT || true";
    let p = pod(
        "volumes",
        &t.node.images.busybox,
        &["/bin/sh", "-c", script],
        json!({
            "securityContext": { "fsGroup": 65532 },
            "containers": [{ "volumeMounts": [
                { "name": "secret", "mountPath": "/v/secret/creds", "readOnly": true },
                { "name": "config", "mountPath": "/v/config", "readOnly": true },
                { "name": "token", "mountPath": "/v/token", "readOnly": true } ] }],
            "volumes": [
                { "name": "secret", "secret": { "secretName": "creds", "defaultMode": 0o440,
                    "items": [{ "key": "token", "path": "token" }] } },
                { "name": "config", "configMap": { "name": "settings", "defaultMode": 0o444,
                    "items": [{ "key": "a.json", "path": "a.json", "mode": 0o400 },
                              { "key": "b.txt", "path": "sub/b.txt" }] } },
                { "name": "token", "projected": { "defaultMode": 0o440, "sources": [
                    { "serviceAccountToken": { "path": "sa-token", "audience": "mro-test", "expirationSeconds": 3600 } } ] } }
            ]
        }),
    );
    let done = run_to_end(&t.client, &t.ns, &p, RUN).await.unwrap();
    let log = logs(&t.client, &t.ns, "volumes").await.unwrap();
    assert_eq!(
        terminated(&done).map(|s| s.exit_code),
        Some(0),
        "{log}\n{}",
        t.node.describe()
    );
    let lines: Vec<&str> = log.lines().collect();
    // What this kubelet (1.20) does, and a stand-in easily gets wrong: with fsGroup every file also
    // gets the group's read bit (the item's 0400 reads 0440), and the projected token file reads
    // 0640 although defaultMode asks 0440.
    assert!(lines.contains(&"secret/creds/token 440 s3cr3t"), "{log}");
    assert!(
        lines.contains(&"config/a.json 440 {\"a\":1}"),
        "item mode plus fsGroup read: {log}"
    );
    assert!(
        lines.contains(&"config/sub/b.txt 444 bee"),
        "item path with a directory: {log}"
    );
    let token_line = lines
        .iter()
        .find(|l| l.starts_with("token/sa-token "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        token_line.starts_with("token/sa-token 640 eyJ"),
        "a JWT: {log}"
    );
    assert!(lines.contains(&"token"), "only the listed item: {log}");
    assert!(!log.contains("UNUSED-PRESENT"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_name_resolves_and_routes_to_a_host_test_server() {
    if mro_tests::node::skip_when_switched_off(
        "a_service_name_resolves_and_routes_to_a_host_test_server",
    ) {
        return;
    }
    let t = NodeNs::new("node-svc").await;
    let files = HttpFileServer::start().await.unwrap();
    files
        .write_file("hello.txt", b"served on the host's loopback")
        .unwrap();
    let port: u16 = files
        .base_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // A Service without selector whose endpoint is the host end of the node's veth (DNAT to the
    // host's loopback), as a real cluster would front an outside server.
    let svc: Service = serde_json::from_value(json!({ "metadata": { "name": "files" },
        "spec": { "ports": [{ "name": "http", "port": 80, "targetPort": port }] } }))
    .unwrap();
    Api::<Service>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let ep: Endpoints = serde_json::from_value(json!({ "metadata": { "name": "files" },
        "subsets": [{ "addresses": [{ "ip": t.node.env.host_ip.to_string() }],
                      "ports": [{ "name": "http", "port": port }] }] }))
    .unwrap();
    Api::<Endpoints>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &ep)
        .await
        .unwrap();
    let name = format!("files.{}.svc.cluster.local", t.ns);
    // DNS and kube-proxy rules follow the Service within seconds: retry for a while in the pod.
    let script = format!(
        "for i in $(seq 1 60); do timeout 5 wget -q -O - http://files/hello.txt && exit 0; sleep 1; done; \
         nslookup {name} || true; cat /etc/resolv.conf; exit 1"
    );
    let p = pod(
        "client",
        &t.node.images.busybox,
        &["/bin/sh", "-c", &script],
        json!({}),
    );
    let done = run_to_end(&t.client, &t.ns, &p, RUN).await.unwrap();
    let log = logs(&t.client, &t.ns, "client").await.unwrap();
    assert_eq!(
        terminated(&done).map(|s| s.exit_code),
        Some(0),
        "{log}\n{}",
        t.node.describe()
    );
    assert!(log.contains("served on the host's loopback"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_image_starts_as_its_non_root_user() {
    if mro_tests::node::skip_when_switched_off("the_operator_image_starts_as_its_non_root_user") {
        return;
    }
    let t = NodeNs::new("node-opimage").await;
    let p = pod(
        "operator",
        &t.node.images.operator,
        &["/model-registry-operator", "--help"],
        json!({ "containers": [{ "securityContext": { "readOnlyRootFilesystem": true } }] }),
    );
    let done = run_to_end(&t.client, &t.ns, &p, RUN).await.unwrap();
    let log = logs(&t.client, &t.ns, "operator").await.unwrap();
    assert_eq!(terminated(&done).map(|s| s.exit_code), Some(0), "{log}");
    assert!(log.contains("run"), "the operator's usage: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_has_no_route_out_of_the_test_world() {
    if mro_tests::node::skip_when_switched_off("a_pod_has_no_route_out_of_the_test_world") {
        return;
    }
    let t = NodeNs::new("node-isolated").await;
    // A documentation address (TEST-NET-3): the node's namespace has no route to it, so the
    // attempt ends there (ICMP unreachable from the node), and nothing leaves the machine.
    let p = pod(
        "outside",
        &t.node.images.busybox,
        &[
            "/bin/sh",
            "-c",
            "timeout 5 wget -q -O - http://203.0.113.1/ 2>&1; echo rc=$?",
        ],
        json!({}),
    );
    let done = run_to_end(&t.client, &t.ns, &p, RUN).await.unwrap();
    let log = logs(&t.client, &t.ns, "outside").await.unwrap();
    assert_eq!(terminated(&done).map(|s| s.exit_code), Some(0), "{log}");
    assert!(log.contains("Network is unreachable"), "{log}");
    assert!(log.contains("rc=1"), "{log}");
}

/// The claims of a JWT (its middle part), without checking the signature.
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("not a JWT payload ({e}): {token:?}"));
    serde_json::from_slice(&bytes).unwrap()
}

/// The kubelet rotates a projected ServiceAccount token in place: a pod that reads the file at the
/// same path again (as model-sync does for every registry request: registry-client
/// `BearerToken::from_file`, unit-tested against a registry peer) gets a new, valid token before
/// the old one expires. The shortest lifetime the API allows (600 s) is rotated at about 80% of
/// it, so this test takes about 8 to 9 minutes; it waits up to 14 in the pod (the token expires
/// at 10, so a later change proves nothing) and bounds the whole at 16.
#[tokio::test(flavor = "multi_thread")]
async fn a_projected_token_is_rotated_in_place_by_the_kubelet() {
    if mro_tests::node::skip_when_switched_off(
        "a_projected_token_is_rotated_in_place_by_the_kubelet",
    ) {
        return;
    }
    use k8s_openapi::api::authentication::v1::TokenReview;
    let t = NodeNs::new("node-token-rotation").await;
    let script = "f=/v/token/sa-token; first=$(cat $f); start=$(date +%s); \
        while :; do now=$(cat $f); \
          if [ -n \"$now\" ] && [ \"$now\" != \"$first\" ]; then \
            echo \"first $first\"; echo \"now $now\"; echo \"after $(( $(date +%s) - start ))s\"; exit 0; fi; \
          [ $(( $(date +%s) - start )) -lt 840 ] || { echo \"first $first\"; echo 'not rotated'; exit 1; }; \
          sleep 5; done";
    let p = pod(
        "rotation",
        &t.node.images.busybox,
        &["/bin/sh", "-c", script],
        json!({
            "containers": [{ "volumeMounts": [
                { "name": "token", "mountPath": "/v/token", "readOnly": true } ] }],
            "volumes": [
                { "name": "token", "projected": { "sources": [
                    { "serviceAccountToken": { "path": "sa-token", "audience": "mro-rotation", "expirationSeconds": 600 } } ] } }
            ]
        }),
    );
    let done = run_to_end(&t.client, &t.ns, &p, Duration::from_secs(960))
        .await
        .unwrap();
    let log = logs(&t.client, &t.ns, "rotation").await.unwrap();
    assert_eq!(
        terminated(&done).map(|s| s.exit_code),
        Some(0),
        "{log}\n{}",
        t.node.describe()
    );
    let field = |prefix: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {log}"))
            .trim()
            .to_string()
    };
    let (first, now) = (field("first "), field("now "));
    assert_ne!(first, now);
    let (old, new) = (jwt_claims(&first), jwt_claims(&now));
    for c in [&old, &new] {
        assert_eq!(c["aud"], json!(["mro-rotation"]), "{c}");
        assert_eq!(
            c["kubernetes.io"]["pod"]["name"], "rotation",
            "bound to the pod: {c}"
        );
    }
    let exp = |c: &serde_json::Value| c["exp"].as_i64().unwrap_or_default();
    assert!(exp(&new) > exp(&old), "a later expiry: {old} vs {new}");
    // The new token is one the apiserver accepts for that audience, as the pod's identity.
    let review: TokenReview = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": { "token": now, "audiences": ["mro-rotation"] } }))
    .unwrap();
    let reviewed = Api::<TokenReview>::all(t.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let status = reviewed.status.unwrap_or_default();
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    assert_eq!(
        status.user.and_then(|u| u.username),
        Some(format!("system:serviceaccount:{}:default", t.ns))
    );
}
