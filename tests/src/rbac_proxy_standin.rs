//! The kube-rbac-proxy stand-in that runs *in a pod* on the real node (the image
//! `mro.local/kube-rbac-proxy:dev` of `tests/local-cluster/images.sh`, program
//! `kube_rbac_proxy_standin`), as the sidecar the Catalog controller renders.
//!
//! Why it exists: no kube-rbac-proxy image can be pulled or built here, and a sidecar that never
//! becomes Ready keeps the whole pod, and so the Deployment, unavailable; the catalog's
//! `Available` condition could then never be proven from a kubelet. What it does, and what it
//! does not:
//! - it takes the command line the controllers render for the real proxy (pflag forms
//!   `--name=value` and `--name value`) and refuses any other flag with exit code 1, so a new
//!   rendered flag fails here instead of passing unseen; the flag table is [`FLAGS`];
//! - it reads `--tls-cert-file`/`--tls-private-key-file` and `--config-file` at start as the real
//!   proxy does, and exits 1 naming the file it cannot read or parse (a key the container's user
//!   may not read fails the container, as it would fail the real proxy);
//! - it serves `/healthz` over HTTPS with that certificate on `--proxy-endpoints-port`: the
//!   rendered liveness and readiness probes are what the kubelet runs against it;
//! - on `--secure-listen-address` it answers every request with 501: token review and
//!   authorization are **not implemented** in the pod, and nothing is forwarded to `--upstream`.
//!   Authorization is tested with the host-side stand-in ([`crate::rbac_proxy`]), which does both
//!   against the real API server.
use std::net::SocketAddr;

use anyhow::{Context as _, bail};

/// The flags the stand-in accepts: those the ModelRegistry and Catalog controllers render for
/// kube-rbac-proxy (crates/operator/src/modelregistry/build/proxy, catalog/build/deployment.rs).
/// Every one takes a value.
pub const FLAGS: &[&str] = &[
    "secure-listen-address",
    "upstream",
    "proxy-endpoints-port",
    "config-file",
    "tls-cert-file",
    "tls-private-key-file",
    "auth-token-audiences",
    "logtostderr",
    "v",
];

/// What the stand-in understood from its command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyArgs {
    pub secure_listen_address: Option<String>,
    pub upstream: Option<String>,
    pub proxy_endpoints_port: Option<u16>,
    pub config_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_private_key_file: Option<String>,
}

/// Parses `args` (after the program name).
pub fn parse(args: &[String]) -> anyhow::Result<ProxyArgs> {
    let mut out = ProxyArgs::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix("--") else {
            bail!("unexpected argument {arg:?} (the stand-in takes flags only)");
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, v.to_string()),
            None => {
                let v = args
                    .get(i)
                    .with_context(|| format!("flag needs an argument: --{body}"))?;
                i += 1;
                (body, v.clone())
            }
        };
        if !FLAGS.contains(&name) {
            bail!("unknown flag: --{name} (the stand-in accepts {FLAGS:?})");
        }
        match name {
            "secure-listen-address" => out.secure_listen_address = Some(value),
            "upstream" => out.upstream = Some(value),
            "proxy-endpoints-port" => {
                out.proxy_endpoints_port = Some(
                    value
                        .parse()
                        .with_context(|| format!("--proxy-endpoints-port={value:?}: not a port"))?,
                )
            }
            "config-file" => out.config_file = Some(value),
            "tls-cert-file" => out.tls_cert_file = Some(value),
            "tls-private-key-file" => out.tls_private_key_file = Some(value),
            _ => {}
        }
    }
    Ok(out)
}

/// `host:port`, an empty host meaning every interface.
fn listen_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .with_context(|| format!("listen address {s:?} is not host:port"))
}

fn read(path: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {what} {path}"))
}

/// Runs the stand-in until SIGTERM/SIGINT. Prints `serving` once both listeners are bound.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let cert_file = args
        .tls_cert_file
        .as_deref()
        .context("--tls-cert-file is required (the stand-in serves TLS only)")?;
    let key_file = args
        .tls_private_key_file
        .as_deref()
        .context("--tls-private-key-file is required")?;
    let cert = read(cert_file, "the TLS certificate")?;
    let key = read(key_file, "the TLS private key")?;
    if let Some(cfg) = &args.config_file {
        let text = String::from_utf8(read(cfg, "the proxy configuration")?)
            .with_context(|| format!("{cfg} is not UTF-8"))?;
        let doc: serde_json::Value =
            serde_saphyr::from_str(&text).with_context(|| format!("parse {cfg}"))?;
        if doc["authorization"]["resourceAttributes"].is_null() {
            bail!("{cfg} has no authorization.resourceAttributes");
        }
        println!(
            "configuration {cfg}: resourceAttributes {}",
            doc["authorization"]["resourceAttributes"]
        );
    }
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse {cert_file}"))?;
    let key = PrivateKeyDer::from_pem_slice(&key).with_context(|| format!("parse {key_file}"))?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key")?;

    let secure = listen_addr(
        args.secure_listen_address
            .as_deref()
            .context("--secure-listen-address is required")?,
    )?;
    let health_port = args
        .proxy_endpoints_port
        .context("--proxy-endpoints-port is required (the probes use it)")?;
    let health = SocketAddr::new(secure.ip(), health_port);
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen on {addr}"))
    };
    let secure_listener = crate::rbac_proxy::TlsListener::new(bind(secure).await?, config.clone());
    let health_listener = crate::rbac_proxy::TlsListener::new(bind(health).await?, config);

    let upstream = args.upstream.clone().unwrap_or_default();
    let refusal = format!(
        "kube-rbac-proxy stand-in: authentication and authorization are not implemented in this \
         image; nothing is forwarded to {upstream:?}\n"
    );
    let secure_app = axum::Router::new().fallback(move || {
        let body = refusal.clone();
        async move { (http::StatusCode::NOT_IMPLEMENTED, body) }
    });
    let health_app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    println!("serving: {secure} (refuses every request), /healthz on {health}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        r = axum::serve(secure_listener, secure_app) => r.context("serving the secure port")?,
        r = axum::serve(health_listener, health_app) => r.context("serving /healthz")?,
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn takes_the_catalog_sidecar_command_line() {
        let a = parse(&args(&[
            "--secure-listen-address=0.0.0.0:8443",
            "--upstream=http://127.0.0.1:8080/",
            "--proxy-endpoints-port=8888",
            "--logtostderr=true",
            "--v=0",
            "--config-file",
            "/etc/kube-rbac-proxy/config-file.yaml",
            "--tls-cert-file=/etc/tls/tls.crt",
            "--tls-private-key-file=/etc/tls/tls.key",
        ]))
        .unwrap();
        assert_eq!(a.secure_listen_address.as_deref(), Some("0.0.0.0:8443"));
        assert_eq!(a.proxy_endpoints_port, Some(8888));
        assert_eq!(
            a.config_file.as_deref(),
            Some("/etc/kube-rbac-proxy/config-file.yaml")
        );
        assert_eq!(a.tls_private_key_file.as_deref(), Some("/etc/tls/tls.key"));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for bad in [
            &["--insecure-listen-address=0.0.0.0:8080"][..],
            &["--upstream"],
            &["positional"],
            &["--proxy-endpoints-port=http"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
