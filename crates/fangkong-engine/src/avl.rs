//! Live positions of patrol units (AVL): every fix from a tracker is screened, placed in the
//! jurisdiction tree, made visible in the live index at once, offered to live subscribers,
//! and queued for the history, which a writer task stores in batches.
//!
//! The pipeline never holds more than the queue's capacity in memory: when the store falls
//! behind and the queue is full, a new fix waits up to `enqueue_timeout_ms` for room and
//! is then refused with [`EngineError::Overloaded`] (HTTP 503), so devices retry later
//! instead of the server growing without bound. A fix is visible in the live index when
//! `ingest_fix` returns; it is in the history within one batch (bounded by the store's
//! write time; see `docs/benchmarks.md`). A crash loses at most the queued, unwritten
//! fixes — never a stored one.
//!
//! Positions are telemetry, not bus events: they travel on their own broadcast channel
//! (subscribers that fall behind skip to the newest), and a fix is applied to the live
//! picture when it is accepted, before it is stored — the board shows the newest fix at
//! once. The history writer stores each batch with one `FixesAccepted` event in the
//! outbox (its transaction: each tracker's newest fix of the batch), from which another
//! node or a replay applies them
//! (`Feature::apply` of `AvlState` and of dispatch: placed where ingest placed them). A fix with an alarm
//! (`sos`) is the exception: the writer stores its `PanicAlarm` event with the batch and
//! publishes it on the bus once the batch is stored, and only then does the alarm become an
//! incident (a reaction, see `reactions`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fangkong_core::auth::{Action, DeviceKind};
use fangkong_core::avl::{AcceptedFix, FilterPolicy, Fix, Rejection, screen};
use fangkong_core::event::Event;
use fangkong_core::jurisdiction::Chain;
use fangkong_core::time::Timestamp;
use fangkong_store::{Outbox, RejectedFix, Store, StoreError, StoredFix};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::bus::EventBus;
use crate::feature::Feature;
use crate::forces::PresenceState;
use crate::{Caller, Engine, EngineError};

/// How the pipeline runs.
#[derive(Clone, Debug, PartialEq)]
pub struct AvlConfig {
    pub filter: FilterPolicy,
    /// Fixes (accepted or refused) waiting for the history writer, at most.
    pub queue: usize,
    /// Fixes per history transaction, at most.
    pub batch: usize,
    /// How long a fix may wait for room in a full queue before it is refused.
    pub enqueue_timeout_ms: u64,
    /// History older than this is purged by the upkeep.
    pub retention_days: u32,
    /// A fixed device (alarm point, checkpoint terminal) not heard from for longer than
    /// this is shown offline (heartbeat supervision).
    pub device_offline_ms: i64,
}

impl Default for AvlConfig {
    fn default() -> AvlConfig {
        AvlConfig {
            filter: FilterPolicy::default(),
            queue: 1_048_576,
            batch: 262_144,
            enqueue_timeout_ms: 2_000,
            retention_days: 90,
            device_offline_ms: 10 * 60_000,
        }
    }
}

/// A device's latest accepted fix and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePosition {
    pub device_id: i64,
    pub unique_id: String,
    pub unit: Option<String>,
    pub fix: Fix,
    pub received_at: Timestamp,
    /// The fix's chain (empty outside the city).
    pub chain: Chain,
    pub h3: Option<u64>,
}

/// What became of a fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingested {
    Accepted,
    Rejected(Rejection),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AvlCounters {
    pub accepted: AtomicU64,
    pub rejected: [AtomicU64; 6],
    pub unknown_device: AtomicU64,
    pub overloaded: AtomicU64,
    pub stored: AtomicU64,
    pub store_retries: AtomicU64,
}

/// A snapshot of the counters and the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AvlStats {
    pub accepted: u64,
    pub rejected: Vec<(Rejection, u64)>,
    pub unknown_device: u64,
    pub overloaded: u64,
    pub stored: u64,
    pub store_retries: u64,
    pub queued: u64,
    pub live_devices: u64,
}

enum HistoryItem {
    /// An accepted fix (the live position itself, shared with the feed: the queue holds a
    /// pointer a fix) and the alarm it raises: the writer publishes the alarm once the fix
    /// is durable, and then tells the ingest that it was.
    Accepted {
        live: Arc<LivePosition>,
        alarm: Option<Box<Alarm>>,
    },
    Rejected(RejectedFix),
}

/// A panic alarm waiting for its fix to be stored.
struct Alarm {
    event: Event,
    published: oneshot::Sender<()>,
}

const SHARDS: usize = 64;

pub(crate) struct AvlState {
    /// Each tracker's newest fix, shared with the history queue and the feed (one
    /// allocation a fix, never a copy on the ingest path).
    shards: Vec<Mutex<HashMap<i64, Arc<LivePosition>>>>,
    /// Minutes units spent in beats, marked as fixes arrive (for the coverage report).
    pub(crate) presence: Arc<PresenceState>,
    history: RwLock<Option<mpsc::Sender<HistoryItem>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    feed: broadcast::Sender<Arc<LivePosition>>,
    counters: Arc<AvlCounters>,
}

impl std::fmt::Debug for AvlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvlState").field("counters", &self.counters).finish_non_exhaustive()
    }
}

impl AvlState {
    /// Starts the history writer over `store`.
    pub(crate) fn start(store: Arc<Store>, bus: Arc<dyn EventBus>, config: &AvlConfig) -> AvlState {
        let (sender, receiver) = mpsc::channel(config.queue.max(1));
        let counters = Arc::new(AvlCounters::default());
        let presence = Arc::new(PresenceState::default());
        let writer = tokio::spawn(write_history(
            store,
            receiver,
            config.batch.max(1),
            Arc::clone(&counters),
            Arc::clone(&presence),
            bus,
        ));
        AvlState {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            presence,
            history: RwLock::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            feed: broadcast::channel(16_384).0,
            counters,
        }
    }

    fn shard(&self, device_id: i64) -> &Mutex<HashMap<i64, Arc<LivePosition>>> {
        &self.shards[device_id.rem_euclid(SHARDS as i64) as usize]
    }

    /// Stops taking fixes, lets the writer store everything queued, and waits for it.
    pub(crate) async fn close(&self) {
        self.history.write().expect("history lock").take();
        let writer = self.writer.lock().expect("writer lock").take();
        if let Some(writer) = writer
            && let Err(error) = writer.await
        {
            tracing::error!(%error, "the position history writer failed");
        }
    }
}

/// Positions as the outbox says (another node's fixes, or a replay): each stored fix, placed
/// where ingest placed it, becomes its tracker's position unless a newer one is there; and
/// the beats, for marking time in them. (This node's own fixes are applied at ingest.)
impl Feature for AvlState {
    fn apply(&self, _at: Timestamp, event: &Event) {
        match event {
            Event::FixesAccepted(fixes) => {
                for accepted in fixes {
                    let mut shard = self.shard(accepted.device_id).lock().expect("live shard");
                    if shard.get(&accepted.device_id).is_some_and(|known| known.fix.fixed_at >= accepted.fix.fixed_at) {
                        continue;
                    }
                    let live = LivePosition {
                        device_id: accepted.device_id,
                        unique_id: accepted.unique_id.clone(),
                        unit: accepted.unit.clone(),
                        fix: accepted.fix.clone(),
                        received_at: accepted.received_at,
                        chain: accepted.chain.clone(),
                        h3: accepted.h3,
                    };
                    shard.insert(accepted.device_id, Arc::new(live));
                }
            }
            Event::BeatsSaved(beats) => self.presence.put_beats(beats),
            _ => {}
        }
    }
}

/// The bus event of a fix with an alarm.
fn panic_alarm(live: &LivePosition) -> Event {
    Event::PanicAlarm {
        unique_id: live.unique_id.clone(),
        unit: live.unit.clone(),
        alarm: live.fix.alarm.clone().unwrap_or_default(),
        lat: live.fix.point.lat(),
        lon: live.fix.point.lon(),
        fixed_at: live.fix.fixed_at,
        chain: live.chain.clone(),
    }
}

/// The history writer: takes whatever is queued (up to a batch), stores it in one
/// transaction, repeats. A failed write is retried (with growing pauses) until it succeeds
/// or the store is closed; meanwhile the queue fills and ingest pushes back.
async fn write_history(
    store: Arc<Store>,
    mut queue: mpsc::Receiver<HistoryItem>,
    batch: usize,
    counters: Arc<AvlCounters>,
    presence: Arc<PresenceState>,
    bus: Arc<dyn EventBus>,
) {
    let mut items = Vec::with_capacity(batch);
    while queue.recv_many(&mut items, batch).await > 0 {
        let (mut accepted, mut rejected, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        // Each tracker's newest fix of the batch: what a follower's live picture needs (the
        // whole history is in the positions table). A batch of a busy minute holds many
        // fixes of each tracker; the event stays as small as the fleet.
        let mut newest: HashMap<i64, Arc<LivePosition>> = HashMap::new();
        // Fixes superseded in the batch, usually the last holders of their positions: freed
        // while the store writes the batch, not before it.
        let mut spent = Vec::new();
        let mut at = Timestamp::from_millis(0);
        for item in items.drain(..) {
            match item {
                HistoryItem::Accepted { live, alarm } => {
                    at = at.max(live.received_at);
                    waiting.extend(alarm.map(|alarm| (live.received_at, alarm)));
                    accepted.push(StoredFix {
                        device_id: live.device_id,
                        received_at: live.received_at,
                        h3: live.h3,
                        fix: live.fix.clone(),
                    });
                    if let Some(superseded) = newest.insert(live.device_id, live) {
                        spent.push(superseded);
                    }
                }
                HistoryItem::Rejected(fix) => rejected.push(fix),
            }
        }
        // The batch's events, stored with it: the fixes, then the alarms they raise.
        let mut fixes: Vec<AcceptedFix> = newest
            .into_values()
            .map(|live| {
                let live = Arc::unwrap_or_clone(live);
                AcceptedFix {
                    device_id: live.device_id,
                    unique_id: live.unique_id,
                    unit: live.unit,
                    received_at: live.received_at,
                    fix: live.fix,
                    chain: live.chain,
                    h3: live.h3,
                }
            })
            .collect();
        fixes.sort_unstable_by_key(|fix| fix.device_id);
        let mut outbox = Outbox::default();
        if !fixes.is_empty() {
            outbox.push(at, &Event::FixesAccepted(fixes));
        }
        for (received_at, alarm) in &waiting {
            outbox.push(*received_at, &alarm.event);
        }
        let mut pause = Duration::from_millis(100);
        let mut spent = Some(spent);
        loop {
            let write = store.write_positions(accepted.clone(), rejected.clone(), outbox.clone());
            let written = match spent.take() {
                // The write is handed to the store on its first poll; the frees run meanwhile.
                Some(spent) => tokio::join!(write, async move { drop(spent) }).0,
                None => write.await,
            };
            match written {
                Ok(stored) => {
                    counters.stored.fetch_add(stored, Ordering::Relaxed);
                    // Announced only now that the fixes are durable: a subscriber never hears
                    // of an alarm a crash could take back, and the alarm is published even if
                    // the device's request was dropped meanwhile.
                    for (at, alarm) in waiting.drain(..) {
                        bus.publish(at, alarm.event);
                        let _ = alarm.published.send(()); // the ingest may have gone (its client left)
                    }
                    break;
                }
                Err(StoreError::Closed) => {
                    tracing::error!(fixes = accepted.len(), "the store closed before the position history was written");
                    return;
                }
                Err(error) => {
                    counters.store_retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, fixes = accepted.len(), "storing positions failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        store_presence(&store, &presence).await;
    }
    store_presence(&store, &presence).await;
}

/// Adds the presence marked since the last batch to the store; on failure they wait for the
/// next batch (a failed write stores none of them).
async fn store_presence(store: &Store, presence: &PresenceState) {
    let rows = presence.take();
    if rows.is_empty() {
        return;
    }
    if let Err(error) = store.record_presence(rows.clone()).await {
        tracing::warn!(%error, rows = rows.len(), "storing beat presence failed; kept for the next batch");
        presence.put_back(rows);
    }
}

impl Engine {
    /// Takes one fix from the tracker `unique_id` (OsmAnd, MQTT, the simulator). Unknown and
    /// revoked devices are refused; a fix the screen refuses is recorded with its reason
    /// and answered [`Ingested::Rejected`].
    pub async fn ingest_fix(&self, unique_id: &str, fix: Fix) -> Result<Ingested, EngineError> {
        let avl = &self.avl;
        let (device_id, unit) = {
            let devices = self.identity.devices.read().expect("devices lock");
            let Some(device) = devices.get(unique_id) else {
                avl.counters.unknown_device.fetch_add(1, Ordering::Relaxed);
                return Err(EngineError::UnknownDevice { unique_id: unique_id.to_string() });
            };
            if device.revoked_at.is_some() {
                return Err(EngineError::DeviceRevoked);
            }
            if device.kind != DeviceKind::Tracker {
                return Err(EngineError::Invalid {
                    field: "id",
                    message: format!("{unique_id} is a {} device, not a tracker", device.kind.as_str()),
                });
            }
            (device.id, device.unit.clone())
        };
        let received_at = self.now();
        let policy = &self.config.avl.filter;
        let first_look = {
            let shard = avl.shard(device_id).lock().expect("live shard");
            screen(shard.get(&device_id).map(|live| &live.fix), &fix, received_at, policy)
        };
        let sender = avl.history.read().expect("history lock").clone().ok_or(StoreError::Closed)?;
        let timeout = Duration::from_millis(self.config.avl.enqueue_timeout_ms);
        let permit = match tokio::time::timeout(timeout, sender.reserve()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(StoreError::Closed.into()),
            Err(_) => {
                avl.counters.overloaded.fetch_add(1, Ordering::Relaxed);
                return Err(EngineError::Overloaded);
            }
        };
        if let Err(reason) = first_look {
            return Ok(self.refuse(permit, device_id, received_at, &fix, reason));
        }
        let place = self.place(fix.point);
        let (chain, h3) = match place {
            Some(location) => (location.chain, Some(location.h3_cell)),
            None => (Chain::default(), fix.point.h3_cell(self.config.h3_resolution)),
        };
        let (live, previous, published) = {
            let mut shard = avl.shard(device_id).lock().expect("live shard");
            // Another fix of this device may have been accepted while this one waited.
            if let Err(reason) = screen(shard.get(&device_id).map(|live| &live.fix), &fix, received_at, policy) {
                drop(shard);
                return Ok(self.refuse(permit, device_id, received_at, &fix, reason));
            }
            let live = Arc::new(LivePosition {
                device_id,
                unique_id: unique_id.to_string(),
                unit,
                fix,
                received_at,
                chain,
                h3,
            });
            let previous = shard.insert(device_id, Arc::clone(&live));
            let (alarm, published) = match live.fix.is_panic() {
                true => {
                    let (tell, published) = oneshot::channel();
                    (Some(Box::new(Alarm { event: panic_alarm(&live), published: tell })), Some(published))
                }
                false => (None, None),
            };
            permit.send(HistoryItem::Accepted { live: Arc::clone(&live), alarm });
            (live, previous, published)
        };
        // The previous fix's time in place is now known: until this one (marked outside the
        // shard's lock, which other fixes of the shard wait for).
        if let Some(previous) = previous
            && let Some(unit) = previous.unit.as_deref().filter(|u| live.unit.as_deref() == Some(*u))
        {
            avl.presence.mark(unit, previous.fix.point, previous.fix.fixed_at, live.fix.fixed_at);
        }
        avl.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.apply_position(&live);
        let _ = avl.feed.send(Arc::clone(&live));
        if let Some(published) = published {
            // The writer announces the alarm once its fix is stored (the reaction task then
            // raises the incident); the device is answered after that.
            published.await.map_err(|_| StoreError::Closed)?;
        }
        Ok(Ingested::Accepted)
    }

    fn refuse(
        &self,
        permit: mpsc::Permit<'_, HistoryItem>,
        device_id: i64,
        received_at: Timestamp,
        fix: &Fix,
        reason: Rejection,
    ) -> Ingested {
        let index = Rejection::ALL.iter().position(|&r| r == reason).unwrap_or(0);
        self.avl.counters.rejected[index].fetch_add(1, Ordering::Relaxed);
        permit.send(HistoryItem::Rejected(RejectedFix {
            device_id,
            received_at,
            fixed_at: fix.fixed_at,
            point: fix.point,
            reason,
        }));
        Ingested::Rejected(reason)
    }

    /// The latest position of every tracker the caller may see (inside their jurisdiction,
    /// and inside `within` when given).
    pub async fn live_positions(
        &self,
        caller: &Caller,
        within: Option<&str>,
    ) -> Result<Vec<LivePosition>, EngineError> {
        self.authorize(caller, Action::ReadPositions, None, "position.live", None).await?;
        let within = match within {
            Some(code) => Some(
                self.scope_of(code).map_err(|_| EngineError::NotFound { entity: "jurisdiction", key: code.into() })?,
            ),
            None => None,
        };
        let mut positions = Vec::new();
        for shard in &self.avl.shards {
            let shard = shard.lock().expect("live shard");
            positions.extend(
                shard
                    .values()
                    .filter(|live| caller.actor.check_in(Action::ReadPositions, &live.chain).is_ok())
                    .filter(|live| within.as_ref().is_none_or(|scope| scope.covers(&live.chain)))
                    .map(|live| LivePosition::clone(live)),
            );
        }
        positions.sort_by_key(|live| live.device_id);
        Ok(positions)
    }

    /// Every tracker's newest accepted fix (no authorisation: for the engine's own reports).
    pub(crate) fn newest_fixes(&self) -> Vec<LivePosition> {
        self.avl
            .shards
            .iter()
            .flat_map(|shard| {
                shard.lock().expect("live shard").values().map(|live| LivePosition::clone(live)).collect::<Vec<_>>()
            })
            .collect()
    }

    /// A tracker's latest position, if the caller may see it.
    pub fn live_position_of(&self, caller: &Caller, unique_id: &str) -> Option<LivePosition> {
        let device_id = self.identity.devices.read().expect("devices lock").get(unique_id)?.id;
        let live = LivePosition::clone(self.avl.shard(device_id).lock().expect("live shard").get(&device_id)?);
        caller.actor.check_in(Action::ReadPositions, &live.chain).is_ok().then_some(live)
    }

    /// New positions as they are accepted (all of them: whoever relays them filters by the
    /// receiver's jurisdiction). A slow receiver gets `Lagged` and skips to the newest.
    pub fn position_feed(&self) -> broadcast::Receiver<Arc<LivePosition>> {
        self.avl.feed.subscribe()
    }

    /// A tracker's history in `from..to` (at most `limit` fixes), for a caller whose
    /// jurisdiction holds the device.
    pub async fn track(
        &self,
        caller: &Caller,
        unique_id: &str,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredFix>, EngineError> {
        let device = self.tracker_for(caller, unique_id, "position.track").await?;
        Ok(self.store.track(device, from, to, limit).await?)
    }

    /// The fixes of a tracker the screen refused in `from..to`, newest first.
    pub async fn refused_fixes(
        &self,
        caller: &Caller,
        unique_id: &str,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<RejectedFix>, EngineError> {
        let device = self.tracker_for(caller, unique_id, "position.refused").await?;
        Ok(self.store.rejections(device, from, to, limit).await?)
    }

    /// The device's id, if the caller may read positions where the device is registered.
    async fn tracker_for(&self, caller: &Caller, unique_id: &str, audit_action: &str) -> Result<i64, EngineError> {
        self.authorize(caller, Action::ReadPositions, None, audit_action, None).await?;
        let device = self.identity.devices.read().expect("devices lock").get(unique_id).cloned();
        let device = device.ok_or_else(|| EngineError::NotFound { entity: "device", key: unique_id.into() })?;
        let place = self.chain_of(&device.jurisdiction).unwrap_or_default();
        self.authorize(caller, Action::ReadPositions, Some(&place), audit_action, Some(("device", unique_id))).await?;
        Ok(device.id)
    }

    pub fn avl_stats(&self) -> AvlStats {
        let counters = &self.avl.counters;
        let queued = self
            .avl
            .history
            .read()
            .expect("history lock")
            .as_ref()
            .map_or(0, |sender| (sender.max_capacity() - sender.capacity()) as u64);
        AvlStats {
            accepted: counters.accepted.load(Ordering::Relaxed),
            rejected: Rejection::ALL
                .into_iter()
                .zip(&counters.rejected)
                .map(|(reason, count)| (reason, count.load(Ordering::Relaxed)))
                .collect(),
            unknown_device: counters.unknown_device.load(Ordering::Relaxed),
            overloaded: counters.overloaded.load(Ordering::Relaxed),
            stored: counters.stored.load(Ordering::Relaxed),
            store_retries: counters.store_retries.load(Ordering::Relaxed),
            queued,
            live_devices: self.avl.shards.iter().map(|s| s.lock().expect("live shard").len() as u64).sum(),
        }
    }

    /// Deletes history older than the retention period (part of the upkeep).
    pub(crate) async fn enforce_position_retention(&self) -> Result<u64, EngineError> {
        let cutoff = self.now().plus_seconds(-i64::from(self.config.avl.retention_days) * 86_400);
        let devices: Vec<i64> = self.identity.devices.read().expect("devices lock").values().map(|d| d.id).collect();
        let mut purged = 0;
        for device in devices {
            purged += self.store.purge_positions(device, cutoff).await?;
        }
        // Presence is derived from the tracks: it goes with them (whole hours before the cutoff).
        purged += self.store.purge_presence(cutoff).await?;
        if purged > 0 {
            tracing::info!(purged, retention_days = self.config.avl.retention_days, "position history purged");
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests;
