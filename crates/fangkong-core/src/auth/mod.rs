//! Who may do what: roles, actions, the permission table, and the actor of every command.
//!
//! The permission table ([`PERMISSIONS`]) is the one place that says which role may take
//! which action; nothing else in the system decides it. Where a record lies (its
//! jurisdiction) is the second half of every decision, checked with
//! [`crate::jurisdiction::Scope`]. Both halves must say yes.

pub mod account;
pub mod lockout;
pub mod password;
pub mod session;
pub mod totp;

use std::fmt;

use crate::jurisdiction::{Chain, Scope};

/// The roles of SYSTEM.md's users table. A user has exactly one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Role {
    /// 系统管理员: users, roles, jurisdictions, code tables, devices.
    Administrator,
    /// 指挥长: the live picture of their area; reassigns forces.
    Commander,
    /// 接警员/调度员: takes calls, creates incidents, assigns units.
    Dispatcher,
    /// 巡逻队员: reports position and status, receives assignments.
    PatrolMember,
    /// 社区民警: owns a police district: its housing, residents, patrols.
    CommunityOfficer,
    /// 协管员: registers rental properties, tenancies and residents.
    HousingCoordinator,
    /// 旅业登记员: submits guest registrations.
    HotelClerk,
    /// 卡口检查员: submits inspection records at checkpoints.
    CheckpointOperator,
    /// 治安信息员: submits tips.
    Informant,
    /// 分析员: hotspots, patterns, comparisons.
    Analyst,
    /// 审计员: reads the audit trail; nobody else can.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::Administrator,
        Role::Commander,
        Role::Dispatcher,
        Role::PatrolMember,
        Role::CommunityOfficer,
        Role::HousingCoordinator,
        Role::HotelClerk,
        Role::CheckpointOperator,
        Role::Informant,
        Role::Analyst,
        Role::Auditor,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Commander => "commander",
            Role::Dispatcher => "dispatcher",
            Role::PatrolMember => "patrol_member",
            Role::CommunityOfficer => "community_officer",
            Role::HousingCoordinator => "housing_coordinator",
            Role::HotelClerk => "hotel_clerk",
            Role::CheckpointOperator => "checkpoint_operator",
            Role::Informant => "informant",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a user can be permitted or refused. Each protected command names one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Action {
    /// Own session and account: who am I, log out, change my password, set up TOTP.
    ManageOwnAccount,
    ReadCodes,
    ManageCodes,
    ReadJurisdictions,
    ManageJurisdictions,
    /// Read user accounts (names and contact details of staff: personal data).
    ReadUsers,
    ManageUsers,
    ReadDevices,
    ManageDevices,
    ReadAudit,
    /// Live positions and tracks of patrol units (where officers are: sensitive).
    ReadPositions,
    /// Units, beats, the roster and coverage reports.
    ReadForces,
    /// Change units, beats, the roster and members.
    ManageForces,
    /// Members' names, identity numbers and phones (personal data).
    ReadForceMembers,
    ReadIncidents,
    ManageIncidents,
    UpdateUnitStatus,
    ReadIncidentCallers,
    /// The housing registry without people: buildings, units, landlords' pledges, alerts
    /// and the change stream (records named by code).
    ReadRegistry,
    /// Register and change registry records: properties, residents, tenancies, permits,
    /// visits; import files.
    ManageRegistry,
    /// Residents (personal data), with identity numbers masked; every read audited.
    ReadResidents,
    /// Identity numbers in full (the role needs them to verify people).
    ReadIdentityNumbers,
    /// Export residents to a file (audited, scoped like reads).
    ExportRegistry,
    /// The server's Prometheus figures at `/metrics` (open incidents, live sessions,
    /// trackers, users: the shape of the whole operation).
    ReadMetrics,
}

impl Action {
    pub const ALL: [Action; 24] = [
        Action::ManageOwnAccount,
        Action::ReadCodes,
        Action::ManageCodes,
        Action::ReadJurisdictions,
        Action::ManageJurisdictions,
        Action::ReadUsers,
        Action::ManageUsers,
        Action::ReadDevices,
        Action::ManageDevices,
        Action::ReadAudit,
        Action::ReadPositions,
        Action::ReadForces,
        Action::ManageForces,
        Action::ReadForceMembers,
        Action::ReadIncidents,
        Action::ManageIncidents,
        Action::UpdateUnitStatus,
        Action::ReadIncidentCallers,
        Action::ReadRegistry,
        Action::ManageRegistry,
        Action::ReadResidents,
        Action::ReadIdentityNumbers,
        Action::ExportRegistry,
        Action::ReadMetrics,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Action::ManageOwnAccount => "manage_own_account",
            Action::ReadCodes => "read_codes",
            Action::ManageCodes => "manage_codes",
            Action::ReadJurisdictions => "read_jurisdictions",
            Action::ManageJurisdictions => "manage_jurisdictions",
            Action::ReadUsers => "read_users",
            Action::ManageUsers => "manage_users",
            Action::ReadDevices => "read_devices",
            Action::ManageDevices => "manage_devices",
            Action::ReadAudit => "read_audit",
            Action::ReadPositions => "read_positions",
            Action::ReadForces => "read_forces",
            Action::ManageForces => "manage_forces",
            Action::ReadForceMembers => "read_force_members",
            Action::ReadIncidents => "read_incidents",
            Action::ManageIncidents => "manage_incidents",
            Action::UpdateUnitStatus => "update_unit_status",
            Action::ReadIncidentCallers => "read_incident_callers",
            Action::ReadRegistry => "read_registry",
            Action::ManageRegistry => "manage_registry",
            Action::ReadResidents => "read_residents",
            Action::ReadIdentityNumbers => "read_identity_numbers",
            Action::ExportRegistry => "export_registry",
            Action::ReadMetrics => "read_metrics",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const EVERYONE: &[Role] = &Role::ALL;
const ADMINISTRATORS: &[Role] = &[Role::Administrator];

/// The permission table: for each action, the roles that may take it. Any other role is
/// refused. The auditor role reads the trail and nothing an auditor does can change it.
pub const PERMISSIONS: &[(Action, &[Role])] = &[
    (Action::ManageOwnAccount, EVERYONE),
    (Action::ReadCodes, EVERYONE),
    (Action::ManageCodes, ADMINISTRATORS),
    (Action::ReadJurisdictions, EVERYONE),
    (Action::ManageJurisdictions, ADMINISTRATORS),
    (Action::ReadUsers, ADMINISTRATORS),
    (Action::ManageUsers, ADMINISTRATORS),
    (Action::ReadDevices, ADMINISTRATORS),
    (Action::ManageDevices, ADMINISTRATORS),
    (Action::ReadAudit, &[Role::Auditor]),
    // The people who send, lead or are units, and the analyst who measures coverage.
    (
        Action::ReadPositions,
        &[Role::Commander, Role::Dispatcher, Role::PatrolMember, Role::CommunityOfficer, Role::Analyst],
    ),
    (
        Action::ReadForces,
        &[Role::Commander, Role::Dispatcher, Role::PatrolMember, Role::CommunityOfficer, Role::Analyst],
    ),
    // The commander runs the force; the administrator keeps its registry.
    (Action::ManageForces, &[Role::Commander, Role::Administrator]),
    (Action::ReadForceMembers, &[Role::Commander, Role::Administrator]),
    // The live board and incident history: those who send, lead or are units, the
    // community officers whose ground it is, and analysts.
    (
        Action::ReadIncidents,
        &[Role::Commander, Role::Dispatcher, Role::PatrolMember, Role::CommunityOfficer, Role::Analyst],
    ),
    // Taking calls, sending units, closing incidents: the 110 centre.
    (Action::ManageIncidents, &[Role::Dispatcher, Role::Commander]),
    // A unit reports its own progress (en route, on scene, clear); the centre may set it too.
    (Action::UpdateUnitStatus, &[Role::Dispatcher, Role::Commander, Role::PatrolMember]),
    // Who called (name, phone) is personal data: only the centre, to call back.
    (Action::ReadIncidentCallers, &[Role::Dispatcher, Role::Commander]),
    (
        Action::ReadRegistry,
        &[Role::CommunityOfficer, Role::HousingCoordinator, Role::Commander, Role::Dispatcher, Role::Analyst],
    ),
    (Action::ManageRegistry, &[Role::CommunityOfficer, Role::HousingCoordinator]),
    (Action::ReadResidents, &[Role::CommunityOfficer, Role::HousingCoordinator, Role::Commander, Role::Dispatcher]),
    // The police officer verifies people against their documents; coordinators and the
    // centre see masked numbers (and can still find a person by the whole number).
    (Action::ReadIdentityNumbers, &[Role::CommunityOfficer]),
    (Action::ExportRegistry, &[Role::CommunityOfficer, Role::HousingCoordinator]),
    // Scrapers use the configured token; a person looking at the figures is an administrator.
    (Action::ReadMetrics, ADMINISTRATORS),
];

/// Whether the table lets `role` take `action`.
pub fn role_allows(role: Role, action: Action) -> bool {
    PERMISSIONS.iter().any(|(a, roles)| *a == action && roles.contains(&role))
}

/// The kinds of device that authenticate with their own credentials.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum DeviceKind {
    /// A vehicle tracker or a patrol member's phone (OsmAnd/Traccar protocol, MQTT).
    Tracker,
    /// An alarm service point (报警点) in a 24-hour business.
    AlarmPoint,
    /// A checkpoint (卡口) terminal.
    Checkpoint,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 3] = [DeviceKind::Tracker, DeviceKind::AlarmPoint, DeviceKind::Checkpoint];

    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Tracker => "tracker",
            DeviceKind::AlarmPoint => "alarm_point",
            DeviceKind::Checkpoint => "checkpoint",
        }
    }

    /// Accepts the stored name and the CLI's spelling (`alarm-point`).
    pub fn parse(text: &str) -> Option<DeviceKind> {
        let text = text.replace('-', "_");
        DeviceKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signed-in user as a command sees them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UserActor {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub scope: Scope,
}

/// An authenticated device.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeviceActor {
    pub device_id: i64,
    pub unique_id: String,
    pub kind: DeviceKind,
}

/// Who is acting. Every command and every audit record names one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Actor {
    User(UserActor),
    Device(DeviceActor),
    /// The operator at the command line, or a background task of the server: trusted,
    /// because it has the database and the key, and still audited.
    System {
        name: String,
    },
    /// Nobody has authenticated yet (a login attempt).
    Anonymous,
}

/// Why a command was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Denial {
    #[error("the {role} role may not {action}")]
    Role { role: Role, action: Action },
    #[error("the record lies outside your jurisdiction")]
    Jurisdiction,
    #[error("devices may only act on their own records")]
    NotOwnDevice,
    #[error("this needs a signed-in user")]
    NotAUser,
    #[error("auditor accounts are managed by the system operator, not by administrators (separation of duties)")]
    SeparationOfDuties,
    #[error("you may not lock, disable, demote or move your own account; another administrator must")]
    OwnAccount,
}

/// Separation of duties (三员分立: system administrator, security administrator, auditor):
/// no user may create, change, lock, unlock or reset an auditor account, nor give anyone
/// the auditor role, so no administrator can make themselves, or a confederate, the one who
/// reads the trail of their own actions. Auditor accounts are managed by the system
/// operator at the terminal (`fangkong user …`).
pub fn check_account_roles(actor: &Actor, roles: &[Role]) -> Result<(), Denial> {
    match actor {
        Actor::User(_) if roles.contains(&Role::Auditor) => Err(Denial::SeparationOfDuties),
        _ => Ok(()),
    }
}

/// No user may lock, disable, demote or move their own account: the last administrator
/// of a jurisdiction would shut themselves out, and only the terminal could recover them.
/// `shuts_out` says whether the change does one of those things.
pub fn check_own_account(actor: &Actor, username: &str, shuts_out: bool) -> Result<(), Denial> {
    match actor {
        Actor::User(user) if shuts_out && user.username == username => Err(Denial::OwnAccount),
        _ => Ok(()),
    }
}

impl Actor {
    /// May this actor take `action` at all?
    pub fn check(&self, action: Action) -> Result<(), Denial> {
        match self {
            Actor::User(user) if role_allows(user.role, action) => Ok(()),
            Actor::User(user) => Err(Denial::Role { role: user.role, action }),
            Actor::System { .. } => Ok(()),
            Actor::Device(_) | Actor::Anonymous => Err(Denial::NotAUser),
        }
    }

    /// May this actor take `action` on a record located at `chain`?
    pub fn check_in(&self, action: Action, chain: &Chain) -> Result<(), Denial> {
        self.check(action)?;
        match self {
            Actor::User(user) if !user.scope.covers(chain) => Err(Denial::Jurisdiction),
            _ => Ok(()),
        }
    }

    /// A short identity for logs and audit records.
    pub fn name(&self) -> String {
        match self {
            Actor::User(user) => user.username.clone(),
            Actor::Device(device) => device.unique_id.clone(),
            Actor::System { name } => name.clone(),
            Actor::Anonymous => "anonymous".into(),
        }
    }
}

#[cfg(test)]
mod tests;
