//! Accounts, sessions and devices: who may use the system, and proof of who is using it.
//!
//! The live state (users, open sessions, devices) is held in memory so that authenticating
//! a request never touches the store; every change goes to the store first, with its audit
//! record, and then to memory.

mod change;
mod devices;
mod login;
mod users;

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use fangkong_core::auth::account::{Device, Session, User};
use fangkong_core::auth::lockout::LoginState;
use fangkong_core::event::Event;
use fangkong_core::time::Timestamp;

pub use devices::{NewDevice, Site};
pub use login::{Authenticated, LoginSuccess, TotpSetup};
pub use users::UserChange;

use crate::crypto::{self, PasswordCost};
use crate::feature::Feature;
use crate::{Engine, EngineError};

/// Failed-login counters kept for usernames that do not exist, so that they lock exactly
/// like real accounts (an attacker learns nothing from the answers). Bounded.
const MAX_UNKNOWN_USERNAMES: usize = 10_000;

#[derive(Debug, Default)]
struct Users {
    by_id: HashMap<i64, User>,
    id_by_username: HashMap<String, i64>,
}

#[derive(Debug, Clone)]
struct LiveSession {
    session: Session,
    /// The last use written to the store; the store is brought up to date by `maintain`.
    stored_last_used: Timestamp,
}

#[derive(Debug)]
pub(crate) struct IdentityState {
    users: RwLock<Users>,
    sessions: RwLock<HashMap<[u8; 32], LiveSession>>,
    pub(crate) devices: RwLock<HashMap<String, Device>>,
    unknown_logins: Mutex<HashMap<String, LoginState>>,
    /// A hash to verify against when the username does not exist, so that the answer takes
    /// as long as for a real account.
    dummy_hash: String,
}

impl IdentityState {
    pub(crate) fn new(cost: PasswordCost) -> IdentityState {
        IdentityState {
            users: RwLock::default(),
            sessions: RwLock::default(),
            devices: RwLock::default(),
            unknown_logins: Mutex::default(),
            dummy_hash: crypto::hash_password("no such user: timing equaliser", cost),
        }
    }

    pub(crate) fn user_count(&self) -> usize {
        self.users.read().expect("users lock").by_id.len()
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.read().expect("sessions lock").len()
    }

    /// Every open session by its token's hash: the user and when it opened.
    pub(crate) fn session_summaries(&self) -> std::collections::BTreeMap<[u8; 32], (i64, Timestamp)> {
        let sessions = self.sessions.read().expect("sessions lock");
        sessions.iter().map(|(hash, live)| (*hash, (live.session.user_id, live.session.created_at))).collect()
    }

    pub(crate) fn device_count(&self) -> usize {
        self.devices.read().expect("devices lock").len()
    }

    fn user_by_name(&self, username: &str) -> Option<User> {
        let users = self.users.read().expect("users lock");
        users.id_by_username.get(username).and_then(|id| users.by_id.get(id)).cloned()
    }

    fn user_by_id(&self, id: i64) -> Option<User> {
        self.users.read().expect("users lock").by_id.get(&id).cloned()
    }

    fn put_user(&self, user: User) {
        let mut users = self.users.write().expect("users lock");
        users.id_by_username.insert(user.username.clone(), user.id);
        users.by_id.insert(user.id, user);
    }

    fn drop_sessions_of(&self, user_id: i64) {
        self.sessions.write().expect("sessions lock").retain(|_, live| live.session.user_id != user_id);
    }
}

/// Sessions as the events say: opened, signed out, all of a user's ended. (Accounts and
/// devices hold secrets no event carries: their commands install the row they stored.)
impl Feature for IdentityState {
    fn apply(&self, _at: Timestamp, event: &Event) {
        match event {
            Event::SignedIn(session) => {
                let live = LiveSession { stored_last_used: session.last_used_at, session: session.clone() };
                self.sessions.write().expect("sessions lock").insert(session.token_hash, live);
            }
            Event::SignedOut { token_hash, .. } => {
                self.sessions.write().expect("sessions lock").remove(token_hash);
            }
            Event::SessionsEnded { user_id } => self.drop_sessions_of(*user_id),
            _ => {}
        }
    }
}

impl Engine {
    pub(crate) async fn load_identity(&self) -> Result<(), EngineError> {
        let users = self.store.list_users().await?;
        // Sessions older than the absolute lifetime can never be used again.
        let oldest = self.now().plus_millis(-self.config.sessions.absolute_millis);
        let sessions = self.store.list_live_sessions(oldest).await?;
        let devices = self.store.list_devices().await?;
        for user in users {
            self.identity.put_user(user);
        }
        *self.identity.sessions.write().expect("sessions lock") = sessions
            .into_iter()
            .map(|session| {
                let live = LiveSession { stored_last_used: session.last_used_at, session };
                (live.session.token_hash, live)
            })
            .collect();
        *self.identity.devices.write().expect("devices lock") =
            devices.into_iter().map(|device| (device.unique_id.clone(), device)).collect();
        Ok(())
    }

    /// Brings the in-memory accounts up to date with the store, for changes made by another
    /// process (the CLI, another server node): locked or disabled users, revoked sessions
    /// and devices take effect here within one upkeep interval.
    pub(crate) async fn refresh_identity(&self) -> Result<(), EngineError> {
        // Hold the administrative lock: no change of ours can land between reading the
        // store and replacing memory, so nothing newer is overwritten with older.
        let _serial = self.admin_writes.lock().await;
        let known: std::collections::HashSet<[u8; 32]> =
            self.identity.sessions.read().expect("sessions lock").keys().copied().collect();
        let oldest = self.now().plus_millis(-self.config.sessions.absolute_millis);
        let users = self.store.list_users().await?;
        let devices = self.store.list_devices().await?;
        let stored_sessions = self.store.list_live_sessions(oldest).await?;
        {
            let mut map = self.identity.users.write().expect("users lock");
            *map = Users::default();
            for user in users {
                map.id_by_username.insert(user.username.clone(), user.id);
                map.by_id.insert(user.id, user);
            }
        }
        *self.identity.devices.write().expect("devices lock") =
            devices.into_iter().map(|device| (device.unique_id.clone(), device)).collect();
        let live: HashMap<[u8; 32], Session> = stored_sessions.into_iter().map(|s| (s.token_hash, s)).collect();
        let mut sessions = self.identity.sessions.write().expect("sessions lock");
        // Revoked elsewhere: known before we read, and no longer live in the store.
        sessions.retain(|hash, _| !known.contains(hash) || live.contains_key(hash));
        // Opened elsewhere (another node): start tracking them.
        for (hash, session) in live {
            sessions.entry(hash).or_insert(LiveSession { stored_last_used: session.last_used_at, session });
        }
        Ok(())
    }

    /// Writes to the store when sessions were last used, for those used since the last
    /// write. Called by `maintain` and at shutdown.
    pub(crate) async fn flush_session_touches(&self) -> Result<(), EngineError> {
        let touches: Vec<([u8; 32], Timestamp)> = self
            .identity
            .sessions
            .read()
            .expect("sessions lock")
            .values()
            .filter(|live| live.session.last_used_at > live.stored_last_used)
            .map(|live| (live.session.token_hash, live.session.last_used_at))
            .collect();
        if touches.is_empty() {
            return Ok(());
        }
        self.store.touch_sessions(&touches).await?;
        let mut sessions = self.identity.sessions.write().expect("sessions lock");
        for (hash, at) in touches {
            if let Some(live) = sessions.get_mut(&hash) {
                live.stored_last_used = live.stored_last_used.max(at);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
