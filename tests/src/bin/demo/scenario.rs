//! What the demo does on the running stack: apply the sample ModelRegistry, run the sample
//! S3 → OCI ModelTransfer, and check the result against the servers themselves.
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt as _};
use mro_api::model_transfer::{ModelTransfer, RegistryTarget, TransferPhase};
use mro_api::{ModelRegistry, SecretKeyValue};
use mro_tests::model_sync::{Model, pull_image};
use mro_tests::tools::repo_root;
use registry_client::{ArtifactState, BearerToken, ClientConfig};
use serde_json::json;

use crate::names::FIELD_MANAGER;
use crate::stack::Stack;

/// The ModelRegistry sample: the registry and its sample database (Secret, Service, PVC,
/// Deployment), as `kubectl apply -k config/samples/postgres` would create them.
pub const REGISTRY_SAMPLE: &[&str] = &[
    "config/samples/databases/postgres/db.yaml",
    "config/samples/postgres/modelregistry.yaml",
];
/// The ModelTransfer sample (its Secrets are made with the local servers' credentials).
pub const TRANSFER_SAMPLE: &str = "config/samples/modeltransfer/s3-to-oci/modeltransfer.yaml";
/// Where the demo puts the model in S3 (bucket, key) and pushes the image (repository, tag).
const BUCKET: &str = "models";
const KEY: &str = "granite/1.0/";
const REPOSITORY: &str = "models/granite";
const TAG: &str = "1.0";
/// Transfers of the small model take seconds; allow for a busy machine.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(180);

/// Applies every document of the sample files in `namespace`; returns "Kind/name" of each.
pub async fn apply_sample(
    client: &Client,
    namespace: &str,
    files: &[&str],
) -> anyhow::Result<Vec<String>> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut applied = Vec::new();
    for file in files {
        let path = repo_root().join(file);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let docs: Vec<DynamicObject> =
            serde_saphyr::from_multiple(&text).with_context(|| format!("parse {file}"))?;
        for mut doc in docs {
            let types = doc
                .types
                .clone()
                .with_context(|| format!("{file}: a document without apiVersion/kind"))?;
            let gvk = kube::api::GroupVersionKind::try_from(&types)?;
            let (ar, caps) = discovery
                .resolve_gvk(&gvk)
                .with_context(|| format!("{file}: kind {} is not served", types.kind))?;
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Namespaced => {
                    doc.metadata.namespace = Some(namespace.into());
                    Api::namespaced_with(client.clone(), namespace, &ar)
                }
                Scope::Cluster => Api::all_with(client.clone(), &ar),
            };
            let name = doc.name_any();
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&doc),
            )
            .await
            .with_context(|| format!("apply {} {name} from {file}", types.kind))?;
            applied.push(format!("{}/{name}", types.kind));
        }
    }
    Ok(applied)
}

/// Waits until the operator has written a status with conditions for the ModelRegistry.
pub async fn wait_registry_status(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<ModelRegistry> {
    let api: Api<ModelRegistry> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mr = api.get(name).await?;
        let has_available = mr
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Available"));
        if has_available {
            return Ok(mr);
        }
        if Instant::now() > deadline {
            bail!("ModelRegistry {name} got no Available condition within 60 s: {mr:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sample ModelTransfer, pointed at the local servers: S3 endpoint and credentials, the
/// local registry (plain HTTP, so `insecure`), a local base image, and the stand-in by URL.
pub async fn create_transfer(stack: &Stack) -> anyhow::Result<ModelTransfer> {
    let client = stack.admin();
    let ns = &stack.namespace;
    let s = &stack.servers;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    // The stand-in listens on plain HTTP: a token Secret goes there only with its owner's
    // opt-in annotation (README, security model).
    let plain_http = json!({ "modelregistry.opendatahub.io/allow-plain-http": "true" });
    for (name, data, annotations) in [
        (
            "s3-credentials",
            json!({ "AWS_ACCESS_KEY_ID": s.s3.access_key(), "AWS_SECRET_ACCESS_KEY": s.s3.secret_key(),
                    "AWS_DEFAULT_REGION": s.s3.region(), "AWS_S3_ENDPOINT": s.s3.endpoint() }),
            json!({}),
        ),
        (
            "model-registry-token",
            json!({ "token": s.registry_token }),
            plain_http,
        ),
    ] {
        let secret = json!({ "apiVersion": "v1", "kind": "Secret",
                             "metadata": { "name": name, "annotations": annotations },
                             "stringData": data });
        secrets
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(secret),
            )
            .await
            .with_context(|| format!("create Secret {name}"))?;
    }

    let path = repo_root().join(TRANSFER_SAMPLE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut mt: ModelTransfer =
        serde_saphyr::from_str(&text).with_context(|| format!("parse {TRANSFER_SAMPLE}"))?;
    mt.metadata.namespace = Some(ns.clone());
    let spec = &mut mt.spec;
    let src = spec
        .source
        .s3
        .as_mut()
        .context("the sample's source is not S3")?;
    src.bucket = BUCKET.into();
    src.key = KEY.into();
    src.endpoint = Some(s.s3.endpoint());
    src.region = Some(s.s3.region().into());
    let dst = spec
        .destination
        .oci
        .as_mut()
        .context("the sample's destination is not OCI")?;
    dst.uri = s.oci.reference(REPOSITORY, TAG);
    // The local registry is plain HTTP without auth: no push credentials needed.
    dst.insecure = Some(true);
    dst.credentials_secret_ref = None;
    dst.base_image = Some(s.base_image.clone());
    // `modelRegistryRef` resolves to `<name>.<namespace>.svc:<port>`: no DNS for Services (and no
    // registry pods) without a kubelet, so the stand-in is addressed by URL.
    spec.registry = RegistryTarget {
        model_registry_ref: None,
        url: Some(s.registry().base_url()),
        token_secret_ref: Some(SecretKeyValue {
            name: "model-registry-token".into(),
            key: "token".into(),
        }),
        ca_config_map_ref: None,
    };
    let job = spec.job.get_or_insert_with(Default::default);
    // One attempt: the demo should show a failure as it is, not retry it.
    job.backoff_limit = Some(0);

    let api: Api<ModelTransfer> = Api::namespaced(client, ns);
    let name = mt.name_any();
    mt.metadata.managed_fields = None;
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&mt),
    )
    .await
    .with_context(|| format!("apply ModelTransfer {name}"))
}

/// The model the demo uploads: a few synthetic files (weights, JSON, a subdirectory).
pub fn model() -> Model {
    Model::small(2024)
}

pub async fn upload_model(stack: &Stack, model: &Model) -> anyhow::Result<String> {
    model
        .put_s3(&stack.servers.s3, BUCKET, KEY.trim_end_matches('/'))
        .await?;
    Ok(format!("s3://{BUCKET}/{KEY}"))
}

/// One observed status change of the transfer, for the live log.
pub struct Progress {
    pub at: Duration,
    pub line: String,
}

/// Waits for a final phase (and, on success, the operator's `Registered` check); calls
/// `on_change` with each new status line.
pub async fn wait_transfer(
    client: &Client,
    namespace: &str,
    name: &str,
    mut on_change: impl FnMut(Progress),
) -> anyhow::Result<ModelTransfer> {
    let api: Api<ModelTransfer> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let mt = api.get(name).await?;
        let st = mt.status.clone().unwrap_or_default();
        let line = status_line(&mt);
        if line != last {
            on_change(Progress {
                at: started.elapsed(),
                line: line.clone(),
            });
            last = line;
        }
        let registered = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Registered")
            .is_some_and(|c| c.status.as_str() != "Unknown");
        match st.phase {
            Some(TransferPhase::Failed) => return Ok(mt),
            Some(TransferPhase::Succeeded) if registered => return Ok(mt),
            _ => {}
        }
        if started.elapsed() > TRANSFER_DEADLINE {
            bail!("ModelTransfer {name} did not finish within {TRANSFER_DEADLINE:?}: {st:#?}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// `phase  Complete=…  Failed=…  Registered=…(reason)`.
pub fn status_line(mt: &ModelTransfer) -> String {
    let st = mt.status.clone().unwrap_or_default();
    let mut line = format!(
        "phase={}",
        st.phase.map(|p| p.as_str()).unwrap_or("(none yet)")
    );
    for t in ["Complete", "Failed", "Registered"] {
        if let Some(c) = st.conditions.iter().find(|c| c.type_ == t) {
            line.push_str(&format!("  {t}={}({})", c.status, c.reason));
        }
    }
    line
}

/// What the demo checked independently of the operator's status.
pub struct Verified {
    pub image_files: usize,
    pub image_bytes: u64,
    pub layers: usize,
    pub registered_model: String,
    pub model_version: String,
    pub artifact_state: String,
}

/// Pulls the image by the digest the status reports and compares its `/models` files with the
/// uploaded model; reads model, version and artifact back from the registry.
pub async fn verify(stack: &Stack, mt: &ModelTransfer, model: &Model) -> anyhow::Result<Verified> {
    let st = mt.status.clone().unwrap_or_default();
    let uri = st
        .artifact_uri
        .clone()
        .context("status.artifactUri is empty")?;
    let pinned = uri.trim_start_matches("oci://");
    if !pinned.contains("@sha256:") {
        bail!("status.artifactUri {uri} is not pinned by digest");
    }
    let image = pull_image(&stack.servers.oci, pinned)
        .await
        .with_context(|| format!("pull {pinned}"))?;
    if &image.models != model {
        bail!(
            "the image's /models files differ from the model in S3 ({} vs {} files)",
            image.models.files.len(),
            model.files.len()
        );
    }
    let registry = registry_client::Client::new(
        ClientConfig::new(&stack.servers.registry().base_url())?
            .with_token(BearerToken::new(stack.servers.registry_token.clone())),
    )?;
    let id = |v: &Option<String>, what: &str| {
        v.clone().with_context(|| format!("status.{what} is empty"))
    };
    let rm = registry
        .get_registered_model(&id(&st.registered_model_id, "registeredModelId")?)
        .await?;
    let mv = registry
        .get_model_version(&id(&st.model_version_id, "modelVersionId")?)
        .await?;
    let ma = registry
        .get_model_artifact(&id(&st.model_artifact_id, "modelArtifactId")?)
        .await?;
    if mv.registered_model_id != rm.id {
        bail!(
            "model version {} belongs to model {}, not {}",
            mv.id,
            mv.registered_model_id,
            rm.id
        );
    }
    let state = ma.fields.state.unwrap_or_default();
    if state != ArtifactState::Live || ma.fields.uri.as_deref() != Some(uri.as_str()) {
        bail!(
            "model artifact {} is {state:?} with URI {:?}, expected LIVE with {uri}",
            ma.id,
            ma.fields.uri
        );
    }
    Ok(Verified {
        image_files: image.models.files.len(),
        image_bytes: image.models.total_bytes(),
        layers: image.layer_media_types.len(),
        registered_model: rm.name,
        model_version: mv.name,
        artifact_state: "LIVE".into(),
    })
}
