//! Keeping the host lease (SPEC §10) through PostgreSQL restarts: a restart
//! ends the session holding the advisory lock, so a second process with the
//! same host id could start while this one still serves it.
//!
//! The lease is checked (one statement) when the pool has found connections
//! lost since the last check, which a restart causes at the next heartbeat,
//! while the last check failed, and otherwise every `CHECK_EVERY`; an idle
//! host adds almost nothing to its statements.

use std::time::{Duration, Instant};

use volscan_repo::{HostLease, LeaseError};

/// The longest time between two checks when nothing was lost.
const CHECK_EVERY: Duration = Duration::from_secs(5 * 60);

/// Keeps `lease` (none on SQLite: never resolves), looking every `tick`
/// whether `lost` (the pool's count of lost connections) moved. Resolves
/// only when another live process took the host id meanwhile.
pub(crate) async fn keep(
    lease: Option<HostLease>,
    lost: impl Fn() -> u64,
    tick: Duration,
) -> LeaseError {
    let Some(mut lease) = lease else { return std::future::pending().await };
    let (mut seen, mut checked, mut failing) = (lost(), Instant::now(), false);
    loop {
        tokio::time::sleep(tick).await;
        let now = lost();
        if now == seen && !failing && checked.elapsed() < CHECK_EVERY {
            continue;
        }
        (seen, checked) = (now, Instant::now());
        let kept = tokio::task::spawn_blocking(move || {
            let kept = lease.keep();
            (lease, kept)
        })
        .await;
        let Ok((held, kept)) = kept else {
            // The check panicked: the lease went with it; there is nothing to keep.
            tracing::error!("the host lease's check failed; it is no longer kept");
            return std::future::pending().await;
        };
        lease = held;
        match kept {
            Ok(false) => failing = false,
            Ok(true) => {
                failing = false;
                tracing::warn!(host = %lease.host(), "the database had dropped this host's lease (a restart?); took it again");
            }
            Err(err @ LeaseError::Held { .. }) => return err,
            Err(err) => {
                if !failing {
                    tracing::warn!(host = %lease.host(), error = %volscan_domain::error_chain(&err), "cannot check this host's lease; trying again");
                }
                failing = true;
            }
        }
    }
}
