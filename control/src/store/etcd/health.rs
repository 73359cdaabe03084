//! The health of each etcd member, as kube-apiserver's ComponentStatus registry reports it:
//! one entry per `--etcd-endpoints` URL (`etcd-0`, `etcd-1`, … in that order), each asked on
//! its own connection — the store's balanced client would answer from any member — for its
//! status, which must name a leader and carry no errors. The members are asked at once, each
//! bounded by the connect timeout.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use crate::store::MemberHealth;

/// Every member's health, in endpoint order.
pub(super) async fn members(endpoints: &[String], limit: Duration) -> Vec<MemberHealth> {
    let probes = endpoints
        .iter()
        .enumerate()
        .map(|(index, endpoint)| async move {
            MemberHealth {
                name: format!("etcd-{index}"),
                error: problem(endpoint, limit).await,
            }
        });
    futures::future::join_all(probes).await
}

/// Why the member at `endpoint` is not healthy; `None` when it is.
async fn problem(endpoint: &str, limit: Duration) -> Option<String> {
    let options = ConnectOptions::new()
        .with_connect_timeout(limit)
        .with_timeout(limit);
    let probe = async {
        let mut client = Client::connect([endpoint], Some(options)).await?;
        client.status().await
    };
    // Connecting and asking each take at most `limit`.
    match tokio::time::timeout(limit * 2, probe).await {
        Err(_) => Some(format!("{endpoint}: no answer within {:?}", limit * 2)),
        Ok(Err(error)) => Some(format!("{endpoint}: {error}")),
        Ok(Ok(status)) if !status.errors().is_empty() => {
            Some(format!("{endpoint}: {}", status.errors().join("; ")))
        }
        Ok(Ok(status)) if status.leader() == 0 => Some(format!("{endpoint}: no leader")),
        Ok(Ok(_)) => None,
    }
}
