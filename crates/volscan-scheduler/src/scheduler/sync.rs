//! Keeping the known volumes in step with the source: the reconcile (new
//! volumes inserted, seen ones refreshed, missing ones marked removed, and
//! which of them containers use), the event follower (container events
//! refresh the users once per burst), and the catch-up after a lost event
//! stream.
//!
//! It owns no state of its own: it writes volumes through the repository,
//! removes a gone volume's series from the ledger, and queues `event` scans
//! through admission.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use volscan_domain::{CancelToken, SourceEvent, Trigger, Volume, VolumeName, error_chain};

use super::admission::Admission;
use super::insight;
use super::ledger::Ledger;
use super::{Ports, Stop, blocking, is_stopping};
use crate::error::SchedulerError;
use crate::policy;

/// Events waiting for the consumer at most; the stream waits when it is full.
const EVENT_BUFFER: usize = 1024;

/// What a reconcile may touch: the ports, and the ledger's series and version.
pub(super) struct SourceSync {
    pub ports: Arc<Ports>,
    pub ledger: Arc<Ledger>,
}

impl SourceSync {
    /// Refreshes the known volumes from the source's list: new ones inserted,
    /// seen ones refreshed, missing ones marked removed (their series go).
    /// Returns the known volumes (when the source does not answer, the ones
    /// already known) and, when the source answered, the names it listed.
    pub async fn reconcile(
        &self,
    ) -> Result<(Vec<Volume>, Option<Vec<VolumeName>>), SchedulerError> {
        let (ports, ledger) = (Arc::clone(&self.ports), Arc::clone(&self.ledger));
        let now = ports.clock.now();
        blocking(move || -> Result<(Vec<Volume>, Option<Vec<VolumeName>>), SchedulerError> {
            let repo = &ports.repo;
            let mut listed = None;
            match ports.source.volumes() {
                Ok(found) => {
                    let present: HashSet<&VolumeName> = found.iter().map(|v| &v.name).collect();
                    for volume in &found {
                        repo.upsert_volume(volume, now)?;
                    }
                    for known in repo.volumes(false)? {
                        if !present.contains(&known.name) && repo.mark_volume_removed(&known.name, now)? {
                            ledger.volume_removed(&known.name);
                            tracing::info!(volume = %known.name, "volume is gone; its history is kept");
                        }
                    }
                    listed = Some(found.into_iter().map(|v| v.name).collect());
                    if let Err(err) = insight::refresh_users(&ports, &ledger) {
                        insight::warn("could not look at the containers using volumes", &err);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %error_chain(&err), "the volume source did not answer; using the volumes already known");
                }
            }
            ledger.touched();
            let known = repo.volumes(false)?;
            // A scan that completed while its volume was being removed must not
            // bring the volume's series back.
            ledger.series().retain(&known.iter().map(|v| v.name.clone()).collect());
            Ok((known, listed))
        })
        .await?
    }

    /// The names of the volumes known now (not removed); empty when the
    /// database does not answer.
    async fn known_names(&self) -> HashSet<VolumeName> {
        let repo = Arc::clone(&self.ports.repo);
        match blocking(move || repo.volumes(false)).await {
            Ok(Ok(volumes)) => volumes.into_iter().map(|v| v.name).collect(),
            _ => {
                tracing::warn!(
                    "cannot read the known volumes; every volume counts as new when the event stream returns"
                );
                HashSet::new()
            }
        }
    }
}

/// The event follower. Until the scheduler stops:
///
/// 1. start the source's event watch on a blocking thread, handing events to
///    a consumer task through a bounded channel; the consumer lets a burst
///    gather for `EVENT_COALESCE`, learns the burst's new volumes from one
///    listing, then handles the events in order (`create` queues an `event`
///    scan, `destroy` marks the volume removed and drops its series);
/// 2. while events may have been missed (the stream was lost before), catch
///    up: reconcile `CATCH_UP_DELAY` after the start and again four times as
///    long after, queuing a scan for every volume that appeared meanwhile;
/// 3. when the stream fails, remember the volumes known at the loss, wait
///    `policy::event_reconnect_delay`, and go to 1.
pub(super) async fn follow_events(admission: Admission, stop: Stop, watch_stop: CancelToken) {
    // Bounded: when the consumer falls behind, the stream waits for it.
    let (sender, mut receiver) = mpsc::channel(EVENT_BUFFER);
    let consumer = {
        let admission = admission.clone();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                tokio::time::sleep(policy::EVENT_COALESCE).await;
                let mut events = vec![first];
                while events.len() < EVENT_BUFFER {
                    match receiver.try_recv() {
                        Ok(event) => events.push(event),
                        Err(_) => break,
                    }
                }
                on_events(&admission, events).await;
            }
        })
    };
    let mut backoff = None;
    // The volumes known when the stream was last lost, while events may have
    // been missed; `None` while none were.
    let mut known_at_loss: Option<HashSet<VolumeName>> = None;
    loop {
        let (source, token, sender) =
            (Arc::clone(&admission.ports.source), watch_stop.clone(), sender.clone());
        let started = tokio::time::Instant::now();
        let mut watching = tokio::task::spawn_blocking(move || {
            source.watch(&token, &mut |event| send_waiting(&sender, event))
        });
        // While the new stream runs, catch up on what was missed. The stream
        // subscribes some time after it starts, so the catch-up repeats until
        // it has succeeded twice, the second time well after the start: a
        // volume created around the reconnect is then seen by one or the
        // other (a duplicate is deduplicated).
        let mut finished = None;
        let mut caught_up = 0;
        while let Some(known) = known_at_loss.as_mut() {
            let delay =
                if caught_up == 0 { policy::CATCH_UP_DELAY } else { policy::CATCH_UP_DELAY * 4 };
            tokio::select! {
                result = &mut watching => {
                    finished = Some(result);
                    break;
                }
                () = tokio::time::sleep(delay) => {
                    if catch_up(&admission, known).await {
                        caught_up += 1;
                    }
                }
            }
            if caught_up >= 2 {
                known_at_loss = None;
            }
        }
        let result = match finished {
            Some(result) => result,
            None => watching.await,
        };
        if is_stopping(&stop) || watch_stop.is_canceled() {
            break;
        }
        match result {
            Ok(Ok(())) => break,
            Ok(Err(err)) => {
                if known_at_loss.is_none() {
                    known_at_loss = Some(sync_of(&admission).known_names().await);
                }
                let delay = policy::event_reconnect_delay(backoff, started.elapsed());
                backoff = Some(delay);
                tracing::warn!(error = %error_chain(&err), retry_in = ?delay, "lost the volume source's event stream");
                let mut stop = stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => break,
                }
            }
            Err(_) => break,
        }
    }
    drop(sender);
    let _ = consumer.await;
}

/// The reconcile half of `admission`.
fn sync_of(admission: &Admission) -> SourceSync {
    SourceSync { ports: Arc::clone(&admission.ports), ledger: Arc::clone(&admission.ledger) }
}

/// Hands an event to the consumer, waiting while the buffer is full. The
/// source may call this inside a runtime of its own (the Docker source
/// does), where `blocking_send` would panic, so it polls instead. An event
/// for a consumer that is gone no longer matters.
fn send_waiting(sender: &mpsc::Sender<SourceEvent>, mut event: SourceEvent) {
    loop {
        match sender.try_send(event) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(back)) => {
                event = back;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// Events were missed: reconciles, and queues a scan (trigger `event`) for
/// every listed volume that `known` (the volumes known when the stream was
/// lost) lacks, as its `create` event would have, adding it to `known`.
/// Returns whether the source answered.
async fn catch_up(admission: &Admission, known: &mut HashSet<VolumeName>) -> bool {
    match sync_of(admission).reconcile().await {
        Ok((_, Some(listed))) => {
            for name in listed {
                if known.insert(name.clone()) {
                    tracing::info!(volume = %name, "volume created while the event stream was down");
                    // The reconcile above has inserted it.
                    on_event(admission, SourceEvent::VolumeCreated(name)).await;
                }
            }
            true
        }
        Ok((_, None)) => false,
        Err(err) => {
            tracing::warn!(error = %error_chain(&err), "reconcile after reconnecting failed");
            false
        }
    }
}

/// Handles a burst of events in order, then looks at the containers once.
/// The `create` events of volumes not known yet share one listing of the
/// source.
async fn on_events(admission: &Admission, events: Vec<SourceEvent>) {
    let created: Vec<VolumeName> = events
        .iter()
        .filter_map(|event| match event {
            SourceEvent::VolumeCreated(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    if !created.is_empty() {
        learn_volumes(admission, created).await;
    }
    for event in events {
        on_event(admission, event).await;
    }
    // Containers came or went, or volumes did: which volumes are unused may
    // have changed (a new volume is unused until a container mounts it).
    let (ports, ledger) = (Arc::clone(&admission.ports), Arc::clone(&admission.ledger));
    if let Ok(Err(err)) = blocking(move || insight::refresh_users(&ports, &ledger)).await {
        insight::warn("could not look at the containers using volumes", &err);
    }
}

/// Inserts the volumes among `names` that are not known yet, from one
/// listing of the source.
async fn learn_volumes(admission: &Admission, names: Vec<VolumeName>) {
    let (ports, ledger) = (Arc::clone(&admission.ports), Arc::clone(&admission.ledger));
    let now = ports.clock.now();
    let learned = blocking(move || -> Result<(), SchedulerError> {
        let mut unknown = HashSet::new();
        for name in names {
            let known = matches!(ports.repo.volume(&name)?, Some(v) if v.removed_at.is_none());
            if !known && !ports.source.is_skipped(&name) {
                unknown.insert(name);
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        for volume in ports.source.volumes()? {
            if unknown.contains(&volume.name) {
                ports.repo.upsert_volume(&volume, now)?;
            }
        }
        ledger.touched();
        Ok(())
    })
    .await;
    if let Ok(Err(err)) = learned {
        tracing::warn!(error = %error_chain(&err), "could not look up newly created volumes");
    }
}

/// Handles one event; a created volume must be known by now (`learn_volumes`).
async fn on_event(admission: &Admission, event: SourceEvent) {
    match event {
        SourceEvent::VolumeCreated(name) => {
            match admission.enqueue(name.clone(), Trigger::Event, false).await {
                Ok(enqueued) => {
                    tracing::info!(volume = %name, scan_id = %enqueued.run.scan_id, "new volume queued for a scan")
                }
                Err(err) => {
                    tracing::warn!(volume = %name, error = %error_chain(&err), "could not queue a new volume")
                }
            }
        }
        SourceEvent::VolumeDestroyed(name) => {
            let (repo, now) = (Arc::clone(&admission.ports.repo), admission.ports.clock.now());
            admission.ledger.volume_removed(&name);
            let gone = name.clone();
            let removed =
                blocking(move || repo.mark_volume_removed(&name, now).map(|r| (name, r))).await;
            // Again: a scan that completed meanwhile set the series back; one
            // that completes from now on sees the volume removed (`insight`).
            admission.ledger.volume_removed(&gone);
            admission.ledger.touched();
            if let Ok(Ok((name, true))) = removed {
                tracing::info!(volume = %name, "volume removed; its history is kept");
            }
        }
        // The users are looked at once per burst, by `on_events`.
        SourceEvent::ContainersChanged => {}
    }
}
