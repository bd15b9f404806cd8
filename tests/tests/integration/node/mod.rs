//! Tests on the real node (`mro_tests::node`): kubelet + containerd + runc behind a control plane of
//! its own. They need root; when the node cannot start they fail with the reason (never skip).
use kube::Client;
use mro_tests::node::{self, Node};

mod catalog;
mod operator;
mod pods;
mod registry;
mod resume;
mod transfer;

/// A fresh namespace on the node's control plane.
#[derive(Clone)]
pub struct NodeNs {
    pub node: &'static Node,
    pub ns: String,
    pub client: Client,
}

impl NodeNs {
    pub async fn new(prefix: &str) -> NodeNs {
        let node = node::shared().await;
        let ns = node.cluster.namespace(prefix).await.expect("namespace");
        NodeNs {
            node,
            ns,
            client: node.cluster.admin_client(),
        }
    }
}
