//! Free loopback ports for servers the harness starts.
use std::net::{Ipv4Addr, TcpListener};

/// A port that was free a moment ago. Servers that can bind port 0 themselves should do so instead.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}
