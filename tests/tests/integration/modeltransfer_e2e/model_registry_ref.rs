//! `spec.registry.modelRegistryRef` end to end: a ModelRegistry behind kube-rbac-proxy, reached by
//! its Service's DNS name with HTTPS, the Job's ServiceAccount token and a CA from a ConfigMap.
//!
//! Cluster DNS: on the real node the Job's pod resolves `<name>.<namespace>.svc` with the node's
//! cluster DNS to the Service's cluster IP, and kube-proxy sends it to the one ready pod the
//! Service selects: a forwarder pod ([`service_forwarder`]) passing the connection on to the
//! kube-rbac-proxy stand-in on the host (the stand-in records every decision, so it runs in the
//! test process; the registry's own Deployment pods never become ready here). The operator (a
//! process, for its `Registered` check) resolves the name to 127.0.0.1 through a hosts file
//! bind-mounted over `/etc/hosts` in its private mount namespace ([`HostAliases`]); with
//! `MRO_NODE=0` the node agent's pod does the same. The ModelRegistry's `kubeRBACProxy.port` is
//! the port the kube-rbac-proxy stand-in ([`RbacProxy`]) listens on, in front of the Model
//! Registry stand-in; the proxy
//! authenticates and authorizes every call against the real API server, so the registration works
//! only through the RoleBinding the ModelTransfer controller grants. The push goes to an
//! htpasswd + TLS registry with its own private CA (`spec.job.caBundleConfigMapRef`) and push
//! credentials (a dockerconfigjson Secret).
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ListParams, PostParams};
use mro_api::ModelTransfer;
use mro_api::model_transfer::TransferPhase;
use mro_tests::model_registry::deployment::start_from_cluster;
use mro_tests::model_sync::{Model, pull_image, push_base_image};
use mro_tests::node::Node;
use mro_tests::node::pods::{self, terminated};
use mro_tests::node_agent::HostAliases;
use mro_tests::oci_registry::OciRegistry;
use mro_tests::ports::free_port;
use mro_tests::postgres::Postgres;
use mro_tests::rbac_proxy::RbacProxy;
use mro_tests::s3::S3Server;
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::DONE;
use super::runner::PodRunner;
use crate::modeltransfer_controller::{Env, condition};

/// Unique on the shared control plane (registry names are unique cluster-wide).
const REGISTRY: &str = "e2e-referenced";
const TRANSFER: &str = "granite";
/// The registry database's user and password (the password's Secret is the ModelRegistry's).
const DB_USER: &str = "registry";
const DB_PASSWORD: &str = "e2e pass:word";

/// The operator binary, run like in a pod: its own process, under the shipped RBAC, with cluster
/// DNS for the registry's Service. Killed on drop.
struct OperatorProcess {
    child: tokio::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl OperatorProcess {
    /// `images`: `RELATED_IMAGE_*` variables (the images of the Deployments and Jobs it renders).
    async fn start(env: &Env, hosts: &HostAliases, images: &[(&str, String)]) -> OperatorProcess {
        mro_tests::operator::install_rbac(&env.client)
            .await
            .expect("install config/rbac");
        let kubeconfig = env
            .cluster
            .dir()
            .expect("a harness-started control plane (operator kubeconfig)")
            .join("operator.kubeconfig");
        let exe = mro_tests::tools::cargo_bin(
            "model-registry-operator",
            "model-registry-operator",
            "MRO_OPERATOR_BIN",
        )
        .await
        .expect("operator binary");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = hosts.command(dir.path(), &exe).expect("operator command");
        let child = cmd
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,model_registry_operator=debug")
            .envs(images.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["--watch-namespace", &env.ns])
            .args([
                "--health-probe-bind-address",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .args([
                "--metrics-bind-address",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the operator");
        OperatorProcess {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the operator exited ({status}):\n{}", self.log());
        }
    }
}

async fn config_map(env: &Env, name: &str, key: &str, value: &str) {
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": name }, "data": { key: value } }))
            .unwrap();
    env.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
}

fn env_of(job: &Job) -> std::collections::BTreeMap<String, String> {
    job.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

/// A client of the proxy as a pod in the cluster would see it (the test process has no cluster
/// DNS: the Service name is mapped to the proxy's address for this client only).
fn proxy_client(proxy: &RbacProxy, ns: &str) -> reqwest::Client {
    let host = format!("{REGISTRY}.{ns}.svc");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(proxy.ca_pem().as_bytes()).unwrap()])
        .resolve(&host, (Ipv4Addr::LOCALHOST, proxy.port()).into())
        .build()
        .unwrap()
}

/// Where no kubelet-run kube-rbac-proxy can be had (the stand-in lives in the test process), a pod
/// carrying the registry pods' labels and the proxy's named port takes its place behind the
/// Service: busybox `nc` passes each connection on to the proxy at the node's host address (TLS
/// end to end between the Job's pod and the proxy). A controller owner reference (a ConfigMap)
/// keeps the registry's ReplicaSet from adopting it. Returns once a pod reaches it through the
/// Service's DNS name: the hosts file of the cluster DNS, the endpoints and kube-proxy's rules
/// follow the Service within seconds, and a Job started before would fail its first call.
async fn service_forwarder(env: &Env, node: &Node, port: u16) {
    const WAIT: Duration = Duration::from_secs(240);
    let owner: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "proxy-forwarder-owner" } })).unwrap();
    let owner = env
        .api::<ConfigMap>()
        .create(&PostParams::default(), &owner)
        .await
        .unwrap();
    let labels = json!({ "app": REGISTRY, "component": "model-registry",
                         "app.kubernetes.io/name": REGISTRY });
    let p = port.to_string();
    let host = node.env.host_ip.to_string();
    let mut pod = pods::pod(
        "proxy-forwarder",
        &node.images.busybox,
        &[
            "/bin/busybox",
            "nc",
            "-ll",
            "-p",
            &p,
            "-e",
            "/bin/busybox",
            "nc",
            &host,
            &p,
        ],
        json!({ "restartPolicy": "Always",
                "containers": [{ "ports": [{ "name": "https-api", "containerPort": port }] }] }),
    );
    pod.metadata.labels = serde_json::from_value(labels).unwrap();
    pod.metadata.owner_references = Some(vec![
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "name": "proxy-forwarder-owner",
            "uid": owner.metadata.uid.clone().unwrap(), "controller": true }))
        .unwrap(),
    ]);
    env.api::<k8s_openapi::api::core::v1::Pod>()
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    // The Service selects it (ready) ...
    let endpoints = env.api::<Endpoints>();
    eventually_within(
        "the forwarder behind the registry's Service",
        WAIT,
        || async {
            endpoints
                .get_opt(REGISTRY)
                .await
                .ok()
                .flatten()
                .and_then(|e| e.subsets)
                .is_some_and(|s| {
                    s.iter()
                        .any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()))
                })
        },
    )
    .await;
    // ... and a pod connects through the Service's name (busybox nc: 1 when it cannot connect).
    let script = format!(
        r#"end=$(( $(date +%s) + 180 ))
until /bin/busybox nc {REGISTRY}.{ns}.svc {port} </dev/null; do
  [ "$(date +%s)" -lt "$end" ] || {{ echo "no connection to {REGISTRY}.{ns}.svc:{port}"; exit 1; }}
  sleep 1
done"#,
        ns = env.ns
    );
    let probe = pods::pod(
        "proxy-forwarder-probe",
        &node.images.busybox,
        &["/bin/sh", "-c", &script],
        json!({}),
    );
    let done = pods::run_to_end(&env.client, &env.ns, &probe, WAIT)
        .await
        .unwrap();
    assert_eq!(
        terminated(&done).map(|t| t.exit_code),
        Some(0),
        "{:#?}\n{}",
        done.status,
        node.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_to_oci_create_model_into_a_referenced_model_registry() {
    let env = Env::without_operator_on(PodRunner::cluster().await, "e2e-mr-ref").await;
    let ns = env.ns.clone();
    // Cluster DNS for the registry's Service, for the operator (and with the agent the Job's pod).
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let hosts = HostAliases::new().with_service(localhost, REGISTRY, &ns);
    let runner = PodRunner::for_env(&env, hosts.clone()).await;
    let node = runner.node();

    // The stores and the registry behind its proxy.
    let s3 = S3Server::start().await.unwrap();
    // Its certificate also names the address pods dial.
    let pod_sans: Vec<String> = node.iter().map(|n| n.env.host_ip.to_string()).collect();
    let oci = OciRegistry::start_auth_tls_also_for(&pod_sans)
        .await
        .unwrap();
    let base_image = push_base_image(&oci).await.unwrap();
    // The registry's database; the registry itself starts from the Deployment the operator
    // renders (below), so until then the proxy forwards to nothing.
    let pg = Postgres::start(DB_USER, DB_PASSWORD, "model_registry")
        .await
        .unwrap();
    let proxy = RbacProxy::start(env.client.clone(), &ns, REGISTRY, "http://127.0.0.1:9")
        .await
        .unwrap();
    let model = Model::small(21);
    model.put_s3(&s3, "models", "granite/1.0").await.unwrap();

    // On the node the Jobs run our model-sync image; the registry's Deployment gets local images
    // too (nothing is ever pulled), though it never becomes ready here.
    let images: Vec<(&str, String)> = node
        .map(|n| {
            vec![
                (
                    "RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE",
                    n.images.model_sync.clone(),
                ),
                (
                    "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE",
                    n.images.model_registry.clone(),
                ),
                (
                    "RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE",
                    n.images.busybox.clone(),
                ),
            ]
        })
        .unwrap_or_default();
    let mut operator = OperatorProcess::start(&env, &hosts, &images).await;

    // What users create: credentials, CA bundles, the ModelRegistry.
    env.secret(
        "s3-creds",
        None,
        json!({ "AWS_ACCESS_KEY_ID": s3.access_key(), "AWS_SECRET_ACCESS_KEY": s3.secret_key(),
                "AWS_DEFAULT_REGION": s3.region(), "AWS_S3_ENDPOINT": runner.for_pods(&s3.endpoint()) }),
    )
    .await;
    env.secret(
        "push-creds",
        Some("kubernetes.io/dockerconfigjson"),
        json!({ ".dockerconfigjson": runner.for_pods(&oci.docker_config_json()) }),
    )
    .await;
    let (crt, key) = proxy
        .ca()
        .issue_server_cert(&[&format!("{REGISTRY}.{ns}.svc")]);
    env.secret(
        &format!("{REGISTRY}-kube-rbac-proxy"),
        Some("kubernetes.io/tls"),
        json!({ "tls.crt": crt, "tls.key": key }),
    )
    .await;
    env.secret("db", None, json!({ "password": DB_PASSWORD }))
        .await;
    config_map(&env, "registry-ca", "ca.crt", proxy.ca_pem()).await;
    config_map(
        &env,
        "oci-ca",
        "ca-bundle.crt",
        oci.ca_pem().expect("a TLS registry"),
    )
    .await;
    let registry: mro_api::ModelRegistry = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": REGISTRY },
        "spec": {
            "rest": {},
            "kubeRBACProxy": { "port": proxy.port() },
            "postgres": { "host": "db", "database": "model_registry", "username": DB_USER,
                          "passwordSecret": { "name": "db", "key": "password" } }
        }
    }))
    .unwrap();
    env.api::<mro_api::ModelRegistry>()
        .create(&PostParams::default(), &registry)
        .await
        .unwrap();
    // The ModelRegistry controller (in the operator process) creates the user Role and the
    // proxy's configuration.
    let roles = env.api::<Role>();
    let cms = env.api::<ConfigMap>();
    let deadline = std::time::Instant::now() + DONE;
    loop {
        let role = roles
            .get_opt(&format!("registry-user-{REGISTRY}"))
            .await
            .unwrap();
        let config = cms
            .get_opt(&format!("{REGISTRY}-kube-rbac-proxy-config"))
            .await
            .unwrap();
        if role.is_some() && config.is_some() {
            break;
        }
        operator.assert_running();
        if std::time::Instant::now() >= deadline {
            let mr = env
                .api::<mro_api::ModelRegistry>()
                .get(REGISTRY)
                .await
                .unwrap();
            panic!(
                "no Role / proxy config from the ModelRegistry controller: {:#?}\n{}",
                mr.status,
                operator.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The Model Registry stand-in runs exactly the REST container the operator rendered (argv,
    // env, Secrets as the API server has them), against the PostgreSQL its DSN names: a
    // Deployment the real server would not start with fails here.
    let started = start_from_cluster(
        &env.client,
        &ns,
        REGISTRY,
        BTreeMap::from([("db".to_string(), (Ipv4Addr::LOCALHOST, pg.port).into())]),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let mr = &started.server.standin;
    proxy.set_upstream(&mr.base_url());
    if let Some(node) = node {
        service_forwarder(&env, node, proxy.port()).await;
    }

    env.create(
        TRANSFER,
        json!({
            "source": { "s3": { "bucket": "models", "key": "granite/1.0/",
                                "credentialsSecretRef": { "name": "s3-creds" } } },
            "destination": { "oci": { "uri": runner.for_pods(&oci.reference("models/granite", "1.0")),
                                      "baseImage": runner.for_pods(&base_image),
                                      "credentialsSecretRef": { "name": "push-creds" } } },
            "registry": { "modelRegistryRef": { "name": REGISTRY },
                          "caConfigMapRef": { "name": "registry-ca", "key": "ca.crt" } },
            "intent": "create_model",
            "model": {
                "registeredModel": { "name": "granite" },
                "modelVersion": { "name": "1.0", "author": "e2e" },
                "modelArtifact": { "modelFormatName": "safetensors" }
            },
            "job": { "backoffLimit": 0,
                     "caBundleConfigMapRef": { "name": "oci-ca", "key": "ca-bundle.crt" } }
        }),
    )
    .await;

    // The Job as derived from the ModelRegistry: HTTPS to the Service on the proxy port, the
    // Job's own token, the registry CA; the private OCI CA as the transfer's trust store.
    let job = env.wait_job(&format!("{TRANSFER}-sync")).await;
    let e = env_of(&job);
    assert_eq!(
        e["MODEL_SYNC_REGISTRY_SERVER_ADDRESS"],
        format!("https://{REGISTRY}.{ns}.svc")
    );
    assert_eq!(e["MODEL_SYNC_REGISTRY_PORT"], proxy.port().to_string());
    assert_eq!(e["MODEL_SYNC_REGISTRY_IS_SECURE"], "true");
    assert!(e.contains_key("MODEL_SYNC_REGISTRY_CUSTOM_CA"), "{e:?}");
    assert!(e.contains_key("SSL_CERT_FILE"), "{e:?}");
    let rb_name = format!("{ns}.{TRANSFER}-registry-user");
    let bindings = env.api::<RoleBinding>();
    let rb = bindings.get(&rb_name).await.expect("the registry grant");
    assert_eq!(rb.role_ref.name, format!("registry-user-{REGISTRY}"));

    // Transferred, registered through the proxy, and confirmed by the Job's read-back.
    let api = env.api::<ModelTransfer>();
    let mut last = None;
    let finished = tokio::time::timeout(DONE, async {
        loop {
            let t = api.get(TRANSFER).await.unwrap();
            let st = t.status.clone().unwrap_or_default();
            let decided = match st.phase {
                Some(TransferPhase::Failed) => true,
                Some(TransferPhase::Succeeded) => {
                    condition(&st, "Registered").is_some_and(|c| c.0 == "True" || c.1 != "Checking")
                }
                _ => false,
            };
            last = Some(st.clone());
            if decided {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    let pods_now = runner.describe(&env).await;
    let diagnostics = || {
        format!(
            "{last:#?}\n--- pods\n{}\n--- operator\n{}\n--- proxy\n{:#?}",
            pods_now,
            operator.log(),
            proxy.decisions()
        )
    };
    let st = finished.unwrap_or_else(|_| panic!("not finished after {DONE:?}: {}", diagnostics()));
    assert_eq!(
        st.phase,
        Some(TransferPhase::Succeeded),
        "{}",
        diagnostics()
    );
    assert_eq!(
        condition(&st, "Registered"),
        Some(("True".into(), "ArtifactLive".into())),
        "{}",
        diagnostics()
    );
    let uri = st.artifact_uri.clone().expect("artifactUri");
    let pinned = uri.trim_start_matches("oci://");
    assert!(
        pinned.starts_with(&format!(
            "{}/models/granite@sha256:",
            runner.for_pods(oci.host())
        )),
        "{uri}"
    );
    let artifact = mr
        .artifacts()
        .into_iter()
        .find(|a| Some(a["id"].as_str().unwrap_or_default()) == st.model_artifact_id.as_deref())
        .expect("the artifact in the registry");
    assert_eq!(artifact["state"], "LIVE");
    assert_eq!(artifact["uri"], uri.as_str());
    assert!(
        mr.registered_models()
            .iter()
            .any(|m| m["name"] == "granite"),
        "{:?}",
        mr.registered_models()
    );
    assert_eq!(
        pull_image(&oci, &runner.on_host(pinned))
            .await
            .unwrap()
            .models,
        model
    );

    // Every registry call went through the proxy as the Job's ServiceAccount (the Job's writes
    // and its read-back: the operator borrows no token for its check), and none was refused:
    // the Job's token, bound to the registry's audience, is what the proxy accepts.
    let sa_user = format!("system:serviceaccount:{ns}:{TRANSFER}-sync");
    let decisions = proxy.decisions();
    assert!(
        decisions.iter().any(|d| d.method == "POST"),
        "{decisions:#?}"
    );
    assert!(
        decisions
            .iter()
            .all(|d| d.user.as_deref() == Some(sa_user.as_str()) && d.refused.is_none()),
        "{decisions:#?}"
    );

    // Registered: the grant is revoked. The same ServiceAccount is now turned away by the proxy,
    // so the access really came from the controller's RoleBinding.
    eventually_within("the grant to be revoked", DONE, || async {
        bindings.get_opt(&rb_name).await.unwrap().is_none()
    })
    .await;
    let token = |audiences: Vec<String>| {
        let sas = env.api::<ServiceAccount>();
        async move {
            sas.create_token_request(
                &format!("{TRANSFER}-sync"),
                &PostParams::default(),
                &serde_json::from_value(json!({ "spec": { "audiences": audiences } })).unwrap(),
            )
            .await
            .unwrap()
            .status
            .unwrap()
            .token
        }
    };
    let call = |token: String| {
        let client = proxy_client(&proxy, &ns);
        let url = format!(
            "https://{REGISTRY}.{ns}.svc:{}/api/model_registry/v1alpha3/registered_models",
            proxy.port()
        );
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The proxy is started with the registry's audience, as the Job's token is projected.
    let audience = format!("https://{REGISTRY}.{ns}.svc:{}", proxy.port());
    let job_pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let projected = serde_json::to_value(&job_pod.volumes).unwrap();
    assert!(
        projected
            .to_string()
            .contains(&format!("\"audience\":\"{audience}\"")),
        "the Job's registry token is not bound to {audience}: {projected}"
    );
    // A token for the API server's audience is refused outright (it could be replayed there);
    // a bound one authenticates, and is now denied: the access came from the RoleBinding.
    assert_eq!(call(token(vec![]).await).await, 401, "{}", diagnostics());
    assert_eq!(
        call(token(vec![audience.clone()]).await).await,
        403,
        "{}",
        diagnostics()
    );
    let left = bindings
        .list(
            &ListParams::default().labels("modelregistry.opendatahub.io/parent-kind=ModelTransfer"),
        )
        .await
        .unwrap();
    assert!(left.items.is_empty());
    operator.assert_running();
    let runs = runner.runs(&env).await;
    assert_eq!(runs.len(), 1, "{}", runner.describe(&env).await);
}
