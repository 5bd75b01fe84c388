//! Domain events: every change of state in Fangkong is described by one [`Event`].
//!
//! The engine publishes an event after the change is durable in the store, so a subscriber
//! (the live board, another server node, an exporter) never sees a change that a crash
//! could take back. Events carry the new state, not a diff, so a subscriber that joins late
//! needs no history to apply them.
//!
//! Events carry the full new state a live picture needs, so that applying them rebuilds it
//! (another node, a replay of the outbox) — and nothing more: account events name the
//! account, its role and status, never its holder's name, password hash or second factor; a
//! session is its token's hash, never the token; an incident carries the caller's *masked*
//! phone only (as every reader of incidents sees it); a person is their blind index.
//! Events are the engine's own: whoever relays them to clients (the live stream) passes
//! only the kinds meant for clients, filtered by the client's permissions and jurisdiction.

use crate::auth::account::{Device, Session, User};
use crate::auth::{DeviceKind, Role};
use crate::avl::AcceptedFix;
use crate::codes::CodeEntry;
use crate::dispatch::{AreaClass, Incident, UnitState, UnitStatus};
use crate::forces::{Beat, ForceCategory, Shift, Unit};
use crate::jurisdiction::{Chain, Jurisdiction};
use crate::time::Timestamp;

/// What the bus may say about a user account.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AccountSummary {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub jurisdiction: String,
    pub disabled: bool,
    pub locked_until: Option<Timestamp>,
    pub second_factor: bool,
}

impl From<&User> for AccountSummary {
    fn from(user: &User) -> AccountSummary {
        AccountSummary {
            user_id: user.id,
            username: user.username.clone(),
            role: user.role,
            jurisdiction: user.jurisdiction.clone(),
            disabled: user.disabled,
            locked_until: user.login.locked_until,
            second_factor: user.has_second_factor(),
        }
    }
}

/// What the bus may say about a device (never its secret's hash).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeviceSummary {
    pub device_id: i64,
    pub unique_id: String,
    pub kind: DeviceKind,
    pub unit: Option<String>,
    pub jurisdiction: String,
    pub revoked_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
}

impl From<&Device> for DeviceSummary {
    fn from(device: &Device) -> DeviceSummary {
        DeviceSummary {
            device_id: device.id,
            unique_id: device.unique_id.clone(),
            kind: device.kind,
            unit: device.unit.clone(),
            jurisdiction: device.jurisdiction.clone(),
            revoked_at: device.revoked_at,
            last_seen_at: device.last_seen_at,
        }
    }
}

/// The person index (人员索引): a keyed blind index of a person's identity number, the same
/// for every registry (the engine computes it; see `engine/src/person.rs`).
pub type PersonIndex = [u8; 16];

/// How a person came to be seen at a place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SeenHow {
    /// A resident was registered (or their record changed).
    ResidentRegistered,
    /// A tenancy began with the person as its lessee or a co-resident.
    TenancyBegan,
}

impl SeenHow {
    pub const fn as_str(self) -> &'static str {
        match self {
            SeenHow::ResidentRegistered => "resident_registered",
            SeenHow::TenancyBegan => "tenancy_began",
        }
    }

    pub fn parse(text: &str) -> Option<SeenHow> {
        [SeenHow::ResidentRegistered, SeenHow::TenancyBegan].into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Clone, PartialEq, Debug)]
pub enum Event {
    /// A code was added to a code table.
    CodeCreated(CodeEntry),
    /// A code's names, priority or active flag changed.
    CodeUpdated(CodeEntry),
    /// Nodes were added to the jurisdiction tree.
    JurisdictionsAdded(Vec<Jurisdiction>),
    /// Nodes got new names or a new shape from a boundary import (the shapes themselves are
    /// too large for the bus: read them from the API).
    JurisdictionsChanged(Vec<Jurisdiction>),
    /// An account was created, or its role, jurisdiction, status or lock changed.
    AccountChanged(AccountSummary),
    /// A user signed in: the new session (its token's hash, never the token). Not relayed
    /// to clients.
    SignedIn(Session),
    /// One of a user's sessions ended by sign-out.
    SignedOut { user_id: i64, token_hash: [u8; 32] },
    /// All of a user's sessions were ended (lock, disable, password change or reset).
    SessionsEnded { user_id: i64 },
    /// A device was registered or its credential revoked.
    DeviceChanged(DeviceSummary),
    /// A device reported that it is alive.
    DeviceSeen { unique_id: String, at: Timestamp },
    /// A tracker raised an alarm (`sos`…) with a fix: someone on patrol needs help there.
    /// Published once the fix is stored; `chain` is where the fix is (who may see it).
    PanicAlarm {
        unique_id: String,
        unit: Option<String>,
        alarm: String,
        lat: f64,
        lon: f64,
        fixed_at: Timestamp,
        chain: Chain,
    },
    /// An incident was created or changed: its new state (the caller: the masked phone only).
    IncidentChanged(Box<Incident>),
    /// A node's area class was set (`Some`) or cleared to inherit its parent's (`None`).
    AreaClassChanged { code: String, class: Option<AreaClass> },
    /// A unit's dispatch status changed.
    UnitStatusChanged { state: UnitState, station: String },
    /// A unit has been in its status longer than the configured limit.
    UnitOverdue { unit: String, station: String, status: UnitStatus, since: Timestamp, limit_ms: i64 },
    /// Units were added or changed (one command saves one or many): their new state.
    UnitsSaved(Vec<Unit>),
    /// Beats were added or changed: their new state, shapes included.
    BeatsSaved(Vec<Beat>),
    /// Shifts were added to the roster, with their ids.
    ShiftsAdded(Vec<(i64, Shift)>),
    /// A shift was removed from the roster.
    ShiftDeleted { id: i64, shift: Shift },
    /// A member of the force was registered or marked serving or not: who and where by
    /// category, station and unit only (never a name or a number).
    MemberChanged { id: i64, category: ForceCategory, station: String, unit: Option<String>, active: bool },
    /// Tracker fixes were accepted and stored: each tracker's newest fix of a stored batch
    /// (the whole history is in the positions table). Telemetry: the live board has its own
    /// feed of positions, so the bus does not carry these; the outbox does, so that another
    /// node or a replay knows every tracker's last fix.
    FixesAccepted(Vec<AcceptedFix>),
    /// A person was seen at a place (a resident registered, a tenancy began; later a hotel
    /// guest, a checkpoint inspection): the person index, how, the record (by code) and its
    /// community. For matching (the wanted list), never shown: it carries no number, name
    /// or phone, and no relay of the live board passes it on.
    PersonSeen { person: PersonIndex, how: SeenHow, record: String, community: String },
    /// A record of the residence and rental-housing registry changed (named by code and
    /// community only; an import is one event). The durable stream is `registry_changes`.
    RegistryChanged { entity: String, code: String, community: String, change: String },
}

impl Event {
    /// A stable dotted name, used for filtering and as the message subject on a bus.
    pub fn name(&self) -> &'static str {
        match self {
            Event::CodeCreated(_) => "code.created",
            Event::CodeUpdated(_) => "code.updated",
            Event::JurisdictionsAdded(_) => "jurisdiction.added",
            Event::JurisdictionsChanged(_) => "jurisdiction.changed",
            Event::AccountChanged(_) => "account.changed",
            Event::SignedIn(_) => "session.signed_in",
            Event::SignedOut { .. } => "session.signed_out",
            Event::SessionsEnded { .. } => "session.ended_all",
            Event::DeviceChanged(_) => "device.changed",
            Event::DeviceSeen { .. } => "device.seen",
            Event::PanicAlarm { .. } => "device.panic",
            Event::IncidentChanged(_) => "incident.changed",
            Event::UnitStatusChanged { .. } => "unit.status",
            Event::UnitOverdue { .. } => "unit.overdue",
            Event::RegistryChanged { .. } => "registry.changed",
            Event::UnitsSaved(_) => "unit.saved",
            Event::BeatsSaved(_) => "beat.saved",
            Event::ShiftsAdded(_) => "roster.added",
            Event::ShiftDeleted { .. } => "roster.deleted",
            Event::MemberChanged { .. } => "member.changed",
            Event::PersonSeen { .. } => "person.seen",
            Event::FixesAccepted(_) => "position.accepted",
            Event::AreaClassChanged { .. } => "area_class.changed",
        }
    }

    /// The record the event is about, as `kind/key` (e.g. `code/incident_type/010300`).
    pub fn subject(&self) -> String {
        match self {
            Event::CodeCreated(entry) | Event::CodeUpdated(entry) => format!("code/{}/{}", entry.kind, entry.code),
            Event::JurisdictionsAdded(nodes) | Event::JurisdictionsChanged(nodes) => {
                format!("jurisdiction/{}", nodes.first().map_or("", |node| node.code.as_str()))
            }
            Event::AccountChanged(account) => format!("user/{}", account.username),
            Event::SignedIn(Session { user_id, .. })
            | Event::SignedOut { user_id, .. }
            | Event::SessionsEnded { user_id } => format!("user/{user_id}"),
            Event::DeviceChanged(device) => format!("device/{}", device.unique_id),
            Event::DeviceSeen { unique_id, .. } | Event::PanicAlarm { unique_id, .. } => format!("device/{unique_id}"),
            Event::IncidentChanged(incident) => format!("incident/{}", incident.id),
            Event::UnitStatusChanged { state, .. } => format!("unit/{}", state.unit),
            Event::UnitOverdue { unit, .. } => format!("unit/{unit}"),
            Event::RegistryChanged { entity, code, .. } => format!("registry/{entity}/{code}"),
            Event::UnitsSaved(units) => format!("unit/{}", units.first().map_or("", |u| u.code.as_str())),
            Event::BeatsSaved(beats) => format!("beat/{}", beats.first().map_or("", |b| b.code.as_str())),
            Event::ShiftsAdded(shifts) => format!("shift/{}", shifts.first().map_or(0, |(id, _)| *id)),
            Event::ShiftDeleted { id, .. } => format!("shift/{id}"),
            Event::MemberChanged { id, .. } => format!("member/{id}"),
            Event::PersonSeen { record, .. } => format!("registry/{record}"),
            Event::FixesAccepted(fixes) => format!("device/{}", fixes.first().map_or("", |f| f.unique_id.as_str())),
            Event::AreaClassChanged { code, .. } => format!("jurisdiction/{code}"),
        }
    }
}
