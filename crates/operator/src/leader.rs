//! Leader election on a coordination.k8s.io Lease, so two replicas never both reconcile.
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

/// Lease parameters (seconds): held for 15, renewed before the last 5 run out.
const LEASE_DURATION: u64 = 15;
const LEASE_GRACE: u64 = 5;

/// Blocks until this process holds the Lease; returns a receiver that turns `false` if it is lost.
pub async fn acquire(
    client: Client,
    namespace: &str,
    lease_name: &str,
    identity: &str,
) -> anyhow::Result<watch::Receiver<bool>> {
    let manager = LeaseManagerBuilder::new(client, lease_name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_DURATION)
        .with_grace(LEASE_GRACE)
        .with_field_manager("model-registry-operator-leader-election")
        .build()
        .await?;
    let (mut rx, _handle) = manager.watch().await;
    tracing::info!(
        lease = lease_name,
        namespace,
        identity,
        "waiting for leadership"
    );
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            anyhow::bail!("leader election stopped before leadership was acquired");
        }
    }
    tracing::info!(lease = lease_name, "acquired leadership");
    Ok(rx)
}

/// Resolves when leadership is lost (or the lease manager stops).
pub async fn lost(mut rx: watch::Receiver<bool>) {
    loop {
        if !*rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Renewal period used in docs and tests.
pub const fn lease_duration() -> Duration {
    Duration::from_secs(LEASE_DURATION)
}
