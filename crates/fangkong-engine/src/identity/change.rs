//! The one way an existing account changes: decide on the row as the store has it now, and
//! write with a compare-and-set.
//!
//! Every account change (a failed sign-in, a lock, a password reset, a second factor) is a
//! read-modify-write. Deciding on the in-memory copy would let a change made by another
//! process (the CLI, another node) be overwritten with stale data — an emergency lock
//! undone by the next failed sign-in. So [`Engine::change_account`] reads the row from the
//! store under the administrative lock, lets the caller decide on it, and writes only if
//! the row is still as read; if another process got there first, it reads and decides
//! again.

use fangkong_core::audit::AuditEntry;
use fangkong_core::auth::account::User;
use fangkong_core::event::{AccountSummary, Event};
use fangkong_store::{Outbox, StoreError};

use crate::{Engine, EngineError};

/// How many times a decision is retried when another process changes the row meanwhile.
const ATTEMPTS: usize = 3;

/// A decided change to an account.
#[derive(Debug)]
pub(crate) struct AccountChange {
    /// The account as it should be (its `updated_at` is set when written).
    pub user: User,
    /// End all the account's sessions in the same transaction.
    pub end_sessions: bool,
    /// Audit records written in the same transaction.
    pub entries: Vec<AuditEntry>,
}

impl Engine {
    /// Reads `username` from the store, lets `decide` choose a change (or none) on that
    /// fresh row, and writes it if nobody changed the row meanwhile. Returns the row as read
    /// and as written (`None` if no change was decided). The caller holds `admin_writes`,
    /// so that its own process's changes are serialised and memory follows the store.
    pub(crate) async fn change_account(
        &self,
        _held: &tokio::sync::MutexGuard<'_, ()>,
        username: &str,
        mut decide: impl FnMut(&User) -> Result<Option<AccountChange>, EngineError>,
    ) -> Result<(User, Option<User>), EngineError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self
                .store
                .get_user_by_username(username)
                .await?
                .ok_or_else(|| EngineError::NotFound { entity: "user", key: username.to_string() })?;
            let Some(mut change) = decide(&current)? else {
                self.identity.put_user(current.clone());
                return Ok((current, None));
            };
            let now = self.now();
            // Strictly later than what was read, so the next compare-and-set sees a change.
            change.user.updated_at = now.max(current.updated_at.plus_millis(1));
            let ended = change.end_sessions.then_some(now);
            let mut events = Vec::new();
            if change.end_sessions {
                events.push(Event::SessionsEnded { user_id: change.user.id });
            }
            if AccountSummary::from(&current) != AccountSummary::from(&change.user) {
                events.push(Event::AccountChanged(AccountSummary::from(&change.user)));
            }
            let outbox = Outbox::new(now, &events);
            match self.store.update_user(&change.user, current.updated_at, ended, &change.entries, outbox).await {
                Ok(()) => {
                    // The account itself (with its secrets, which no event carries) is
                    // memory's copy of the row just written; a follower re-reads it.
                    self.identity.put_user(change.user.clone());
                    for event in events {
                        self.publish(now, event);
                    }
                    return Ok((current, Some(change.user)));
                }
                Err(StoreError::Conflict { entity: "user", .. }) if attempt < ATTEMPTS => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }
}
