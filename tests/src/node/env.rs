//! The node's names and addresses, as `tests/local-cluster/node.sh plan` writes them to
//! `node.env`, and how a pod must address the host's loopback test servers.
use std::net::Ipv4Addr;
use std::path::PathBuf;

use thiserror::Error;

/// What `node.sh plan` wrote to `node.env`: the node's names and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEnv {
    pub slot: u32,
    pub node_name: String,
    pub netns: String,
    /// Host end of the veth: where pods reach the host's loopback servers and the apiserver.
    pub host_ip: Ipv4Addr,
    /// The node's address (kubelet, cluster DNS).
    pub node_ip: Ipv4Addr,
    pub pod_cidr: String,
    pub cluster_dns: Ipv4Addr,
    /// containerd's socket and state live here.
    pub run_dir: PathBuf,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NodeEnvError {
    #[error("node.env: missing {0}")]
    Missing(&'static str),
    #[error("node.env: {key} = {value:?} is not {expected}")]
    Invalid {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl NodeEnv {
    /// Parses `KEY=value` lines (the file `node.sh plan` writes).
    pub fn parse(text: &str) -> Result<NodeEnv, NodeEnvError> {
        let get = |key: &'static str| -> Result<&str, NodeEnvError> {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim())
                .ok_or(NodeEnvError::Missing(key))
        };
        let ip = |key: &'static str| -> Result<Ipv4Addr, NodeEnvError> {
            let v = get(key)?;
            v.parse().map_err(|_| NodeEnvError::Invalid {
                key,
                value: v.into(),
                expected: "an IPv4 address",
            })
        };
        let slot = get("NODE_SLOT")?;
        Ok(NodeEnv {
            slot: slot.parse().map_err(|_| NodeEnvError::Invalid {
                key: "NODE_SLOT",
                value: slot.into(),
                expected: "a number",
            })?,
            node_name: get("NODE_NAME")?.into(),
            netns: get("NETNS")?.into(),
            host_ip: ip("HOST_IP")?,
            node_ip: ip("NODE_IP")?,
            pod_cidr: get("POD_CIDR")?.into(),
            cluster_dns: ip("CLUSTER_DNS")?,
            run_dir: PathBuf::from(get("RUN_DIR")?),
        })
    }

    pub fn containerd_socket(&self) -> PathBuf {
        self.run_dir.join("containerd.sock")
    }

    /// `url` as a pod must dial it: a host loopback address (`127.0.0.1`) becomes [`Self::host_ip`],
    /// where the node's host rule forwards to the same port on the host's loopback. Other URLs are
    /// returned unchanged.
    pub fn for_pods(&self, url: &str) -> String {
        match url::Url::parse(url) {
            Ok(mut u) if u.host_str() == Some("127.0.0.1") => {
                u.set_host(Some(&self.host_ip.to_string()))
                    .expect("an IPv4 host is valid");
                let s = u.to_string();
                // Url adds a trailing slash to bare origins; keep the caller's form.
                if !url.ends_with('/') && s.ends_with('/') && u.path() == "/" {
                    s.trim_end_matches('/').to_string()
                } else {
                    s
                }
            }
            _ => url.replace("127.0.0.1:", &format!("{}:", self.host_ip)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: &str = "NODE_SLOT=7\nNODE_NAME=mro-node\nNETNS=mro-node-7\nHOST_VETH=mron7h\n\
        NODE_VETH=mron7n\nHOST_IP=10.213.7.1\nNODE_IP=10.213.7.2\nPOD_CIDR=10.214.7.0/24\n\
        POD_GATEWAY=10.214.7.1\nCLUSTER_DNS=10.213.7.2\nCGROUP_ROOT=/mro-node-7\nRUN_DIR=/run/mro-node/7\n";

    #[test]
    fn parses_what_node_sh_plan_writes() {
        let env = NodeEnv::parse(ENV).unwrap();
        assert_eq!(env.slot, 7);
        assert_eq!(env.host_ip, Ipv4Addr::new(10, 213, 7, 1));
        assert_eq!(env.node_ip, Ipv4Addr::new(10, 213, 7, 2));
        assert_eq!(env.cluster_dns, Ipv4Addr::new(10, 213, 7, 2));
        assert_eq!(env.pod_cidr, "10.214.7.0/24");
        assert_eq!(
            env.containerd_socket(),
            PathBuf::from("/run/mro-node/7/containerd.sock")
        );
    }

    #[test]
    fn names_the_missing_or_bad_key() {
        let missing = ENV.replace("HOST_IP=10.213.7.1\n", "");
        assert_eq!(
            NodeEnv::parse(&missing),
            Err(NodeEnvError::Missing("HOST_IP"))
        );
        let bad = ENV.replace("NODE_IP=10.213.7.2", "NODE_IP=nope");
        let err = NodeEnv::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("NODE_IP") && err.contains("IPv4"), "{err}");
    }

    #[test]
    fn loopback_urls_become_the_host_end_of_the_veth() {
        let env = NodeEnv::parse(ENV).unwrap();
        assert_eq!(
            env.for_pods("http://127.0.0.1:9000"),
            "http://10.213.7.1:9000"
        );
        assert_eq!(
            env.for_pods("http://127.0.0.1:9000/bucket/key?x=1"),
            "http://10.213.7.1:9000/bucket/key?x=1"
        );
        assert_eq!(
            env.for_pods("127.0.0.1:5000/models/iris:v1"),
            "10.213.7.1:5000/models/iris:v1"
        );
        assert_eq!(
            env.for_pods("http://s3.example:9000"),
            "http://s3.example:9000"
        );
    }
}
