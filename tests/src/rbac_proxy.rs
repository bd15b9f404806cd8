//! A kube-rbac-proxy stand-in: the authenticating HTTPS front end a ModelRegistry with
//! `kubeRBACProxy` gets, in front of an upstream (the Model Registry stand-in), for tests.
//!
//! It enforces what the ModelRegistry controller configures for the real proxy: every request
//! must carry a bearer token the API server accepts (TokenReview) for the audiences of the
//! proxy container's `--auth-token-audiences` flag in the registry Deployment, and its user must pass a
//! SubjectAccessReview with the `resourceAttributes` of the controller's
//! `<name>-kube-rbac-proxy-config` ConfigMap (read per request, as the real proxy reads its
//! mounted file), the verb being the configured one (as OpenDataHub's build of kube-rbac-proxy
//! reads it; upstream builds ignore it) or, when none is, the one derived from the HTTP method. So what a caller may do is decided by the real RBAC objects on the real
//! API server, e.g. the RoleBinding the ModelTransfer controller creates. Denied requests get
//! 401/403 and never reach the upstream; allowed ones are forwarded without the token. It serves
//! TLS with a certificate for the Service's DNS names, signed by a per-proxy [`TestCa`].
//!
//! Limits: HTTP/1.1 only; bodies are buffered (the registry's JSON calls are small).
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::tls::TestCa;

/// Largest request body forwarded.
const MAX_BODY: usize = 16 << 20;
/// Key of the proxy configuration in `<name>-kube-rbac-proxy-config`.
const CONFIG_KEY: &str = "config-file.yaml";

/// One authorization decision, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The authenticated user (`system:serviceaccount:<ns>:<name>`), or `None` when the token
    /// was missing or rejected.
    pub user: Option<String>,
    pub method: String,
    pub path: String,
    /// The status the proxy answered with itself (401/403), or `None` when it forwarded.
    pub refused: Option<u16>,
}

struct Shared {
    kube: kube::Client,
    /// Where allowed calls go; settable after the start ([`RbacProxy::set_upstream`]).
    upstream: Mutex<String>,
    namespace: String,
    name: String,
    http: reqwest::Client,
    decisions: Mutex<Vec<Decision>>,
}

/// A running proxy; stops on drop.
pub struct RbacProxy {
    addr: SocketAddr,
    ca: TestCa,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RbacProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP listener whose connections complete a TLS handshake before they are served.
pub struct TlsListener {
    pub(crate) tcp: TcpListener,
    pub(crate) tls: TlsAcceptor,
}

impl TlsListener {
    /// Serves `config`'s certificate on `tcp`.
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> TlsListener {
        TlsListener {
            tcp,
            tls: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A failed handshake (a client that does not trust the CA) only drops that
            // connection.
            match self.tls.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(e) => tracing::debug!(error = %e, "rbac proxy: TLS handshake failed"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Shared {
    fn upstream(&self) -> String {
        self.upstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl RbacProxy {
    /// Points the proxy at another upstream (`http://host:port`): a registry that can start
    /// only once the proxy's port is known (it is in the ModelRegistry's spec).
    pub fn set_upstream(&self, upstream: &str) {
        *self
            .shared
            .upstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            upstream.trim_end_matches('/').to_owned();
    }

    /// Starts a proxy for the ModelRegistry `name` in `namespace` (its Service's DNS names are
    /// the certificate's names), forwarding to `upstream` (`http://host:port`). `kube` makes the
    /// TokenReviews and SubjectAccessReviews (the real proxy uses its ServiceAccount, which the
    /// ModelRegistry controller binds to `system:auth-delegator`).
    pub async fn start(
        kube: kube::Client,
        namespace: &str,
        name: &str,
        upstream: &str,
    ) -> anyhow::Result<RbacProxy> {
        let ca = TestCa::try_new()?;
        let dns = [
            format!("{name}.{namespace}.svc"),
            format!("{name}.{namespace}.svc.cluster.local"),
            format!("{name}.{namespace}"),
        ];
        let sans: Vec<&str> = dns.iter().map(String::as_str).collect();
        let config = ca.try_server_config(&sans)?;
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind the rbac proxy")?;
        let addr = tcp.local_addr()?;
        let listener = TlsListener {
            tcp,
            tls: TlsAcceptor::from(Arc::new(config)),
        };
        let shared = Arc::new(Shared {
            kube,
            upstream: Mutex::new(upstream.trim_end_matches('/').to_owned()),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            http: reqwest::Client::new(),
            decisions: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "rbac proxy stopped");
            }
        });
        Ok(RbacProxy {
            addr,
            ca,
            shared,
            task,
        })
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The CA that signed its certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The CA, to issue more certificates (e.g. the `<name>-kube-rbac-proxy` TLS Secret).
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// Every decision so far, in order.
    pub fn decisions(&self) -> Vec<Decision> {
        self.shared.decisions.lock().expect("decisions").clone()
    }
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.to_string());
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let record = |user: Option<String>, refused: Option<u16>| {
        s.decisions.lock().expect("decisions").push(Decision {
            user,
            method: method.clone(),
            path: path.clone(),
            refused,
        });
    };
    let user = match token {
        Some(t) => authenticate(&s, &t).await,
        None => Ok(None),
    };
    let user = match user {
        Ok(Some(u)) => u,
        Ok(None) => {
            record(None, Some(401));
            return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
        Err(e) => {
            record(None, Some(500));
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response();
        }
    };
    match authorize(&s, &user, &method).await {
        Ok(true) => {}
        Ok(false) => {
            record(Some(user.name.clone()), Some(403));
            return (StatusCode::FORBIDDEN, "Forbidden").into_response();
        }
        Err(e) => {
            record(Some(user.name.clone()), Some(500));
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response();
        }
    }
    record(Some(user.name.clone()), None);
    match forward(&s, req, &path).await {
        Ok(r) => r,
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
    }
}

struct User {
    name: String,
    uid: Option<String>,
    groups: Option<Vec<String>>,
}

/// The `--auth-token-audiences` the controller starts the real proxy with (the registry
/// Deployment's `kube-rbac-proxy` container), read per request as the real proxy has its flags;
/// none when the Deployment or the flag is absent (the real proxy then reviews tokens for the
/// API server's audience).
async fn audiences(s: &Shared) -> anyhow::Result<Option<Vec<String>>> {
    use k8s_openapi::api::apps::v1::Deployment;
    let Some(dep) = Api::<Deployment>::namespaced(s.kube.clone(), &s.namespace)
        .get_opt(&s.name)
        .await
        .context("read the registry Deployment")?
    else {
        return Ok(None);
    };
    let flag = dep
        .spec
        .and_then(|d| d.template.spec)
        .into_iter()
        .flat_map(|p| p.containers)
        .filter(|c| c.name == "kube-rbac-proxy")
        .flat_map(|c| c.args.unwrap_or_default())
        .find_map(|a| a.strip_prefix("--auth-token-audiences=").map(str::to_owned));
    Ok(flag.map(|f| {
        f.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }))
}

async fn authenticate(s: &Shared, token: &str) -> anyhow::Result<Option<User>> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: audiences(s).await?,
        },
        ..Default::default()
    };
    let out = Api::<TokenReview>::all(s.kube.clone())
        .create(&PostParams::default(), &review)
        .await
        .context("TokenReview")?;
    let Some(st) = out.status.filter(|st| st.authenticated == Some(true)) else {
        return Ok(None);
    };
    let u = st.user.unwrap_or_default();
    Ok(u.username.map(|name| User {
        name,
        uid: u.uid,
        groups: u.groups,
    }))
}

/// The `authorization.resourceAttributes` of the controller's proxy configuration.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    namespace: Option<String>,
    api_group: Option<String>,
    api_version: Option<String>,
    resource: Option<String>,
    subresource: Option<String>,
    name: Option<String>,
    verb: Option<String>,
}

async fn attributes(s: &Shared) -> anyhow::Result<Attributes> {
    let name = format!("{}-kube-rbac-proxy-config", s.name);
    let cm = Api::<ConfigMap>::namespaced(s.kube.clone(), &s.namespace)
        .get(&name)
        .await
        .with_context(|| format!("read the proxy configuration ConfigMap {name}"))?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_KEY))
        .with_context(|| format!("ConfigMap {name} has no {CONFIG_KEY}"))?;
    let cfg: serde_json::Value = serde_saphyr::from_str(text)?;
    Ok(serde_json::from_value(
        cfg["authorization"]["resourceAttributes"].clone(),
    )?)
}

/// kube-rbac-proxy's verb for an HTTP method when the configuration names none.
fn verb_of(method: &str) -> &'static str {
    match method {
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "get",
    }
}

async fn authorize(s: &Shared, user: &User, method: &str) -> anyhow::Result<bool> {
    let a = attributes(s).await?;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            resource_attributes: Some(ResourceAttributes {
                namespace: a.namespace,
                group: a.api_group,
                version: a.api_version,
                resource: a.resource,
                subresource: a.subresource,
                name: a.name,
                verb: Some(a.verb.unwrap_or_else(|| verb_of(method).to_owned())),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = Api::<SubjectAccessReview>::all(s.kube.clone())
        .create(&PostParams::default(), &review)
        .await
        .context("SubjectAccessReview")?;
    Ok(out.status.is_some_and(|st| st.allowed))
}

async fn forward(s: &Shared, req: Request, path: &str) -> anyhow::Result<Response> {
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())?;
    let content_type = req.headers().get(http::header::CONTENT_TYPE).cloned();
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY).await?;
    let mut up = s
        .http
        .request(method, format!("{}{path}", s.upstream()))
        .body(body);
    if let Some(ct) = content_type {
        up = up.header(http::header::CONTENT_TYPE, ct);
    }
    let resp = up.send().await.context("forward to the upstream")?;
    let status = StatusCode::from_u16(resp.status().as_u16())?;
    let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let bytes = resp.bytes().await?;
    let mut out = Response::builder().status(status);
    if let Some(ct) = content_type {
        out = out.header(http::header::CONTENT_TYPE, ct.as_bytes());
    }
    Ok(out.body(Body::from(bytes))?)
}
