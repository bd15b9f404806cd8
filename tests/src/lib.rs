//! Test harness for model-registry-operator: real servers on loopback, started per test run.
//!
//! - [`cluster`]: a real kube-apiserver + etcd + kube-controller-manager (or an existing cluster),
//!   with our CRDs installed and one namespace per test.
//! - [`platform_apis`]: optional OpenShift / Istio / Authorino / Gateway API CRDs, per flavour.
//! - [`s3`]: an S3 protocol server (s3s-fs) with SigV4 credentials enforced.
//! - [`oci_registry`]: Debian's distribution registry, plain HTTP or htpasswd + TLS.
//! - [`http_files`]: a static HTTP file server for `uri` sources.
//! - [`hf_hub`]: a Hugging Face Hub stand-in (API, resolve, LFS CDN), checked with `huggingface_hub`.
//! - [`catalog_server`]: the Model Catalog server's `catalog` command line (flag table, parser).
//! - [`model_registry`]: a stateful Model Registry REST stand-in, contract-tested with Prism.
//! - [`model_sync`]: runs the `model-sync` binary like a Job (integration tests, `bench-sync`).
//! - [`patch_gate`]: a proxy counting `PATCH` body bytes that can hold uploads past an offset.
//! - [`operator`]: the operator run in-process under the shipped RBAC.
//! - [`rbac_proxy`]: a kube-rbac-proxy stand-in (TokenReview + SubjectAccessReview, TLS).
//! - [`rbac_proxy_standin`]: the in-pod kube-rbac-proxy stand-in (rendered flags, TLS probes only).
//! - [`node`]: a real node (kubelet + containerd + runc, kube-proxy, cluster DNS) in a network
//!   namespace of its own, with our images built offline and loaded.
//! - [`node_agent`]: plays the kubelet for Job pods, with Service host aliases, only when the real
//!   node is switched off (`MRO_NODE=0`: `make demo`, the end-to-end transfer tests).
//! - [`imports`]: import circles between a crate's files (`make lint`).
//! - [`token_catcher`]: an HTTPS endpoint keeping the bearer tokens sent to it (security tests).
#![forbid(unsafe_code)]

pub mod catalog_server;
pub mod cluster;
pub mod hf_hub;
pub mod http_files;
pub mod imports;
pub mod mariadb;
pub mod model_registry;
pub mod model_sync;
pub mod node;
pub mod node_agent;
pub mod oci_registry;
pub mod operator;
pub mod patch_gate;
pub mod platform_apis;
pub mod ports;
pub mod postgres;
pub mod rbac_proxy;
pub mod rbac_proxy_standin;
pub mod s3;
pub mod sigstore;
pub mod tls;
pub mod token_catcher;
pub mod tools;
pub mod wait;

use std::sync::Once;

/// Installs the one TLS crypto provider (aws-lc-rs) and a test log subscriber. Idempotent.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}
