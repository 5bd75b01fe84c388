//! Administering user accounts: create, change, lock, unlock, reset; list and read.
//!
//! An administrator acts only inside their jurisdiction: on users bound inside it, and
//! binding users only to nodes inside it. Nobody signed in manages auditor accounts
//! (separation of duties; see `fangkong_core::auth::check_account_roles`). Reading accounts
//! (names of staff) is a read of personal data: it needs a stated purpose and is audited.
//! Each change is decided on the account as the store has it now (see `change.rs`).

use fangkong_core::audit::Outcome;
use fangkong_core::auth::account::{NewUser, User, check_display_name, check_username};
use fangkong_core::auth::lockout::LoginState;
use fangkong_core::auth::password::check_password;
use fangkong_core::auth::{Action, Denial, Role, check_account_roles, check_own_account};
use fangkong_core::event::{AccountSummary, Event};
use fangkong_core::jurisdiction::Chain;
use fangkong_core::time::Timestamp;
use fangkong_store::{Audited, Outbox};

use super::change::AccountChange;
use crate::{Caller, Engine, EngineError};

/// Changes to a user; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChange {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub jurisdiction: Option<String>,
    pub disabled: Option<bool>,
    /// Removes the user's second factor (e.g. a lost phone); they may set up a new one.
    pub clear_second_factor: bool,
}

/// An administrative lock lasts until an administrator lifts it.
const ADMIN_LOCK: Timestamp = Timestamp::from_millis(i64::MAX / 2);

impl Engine {
    /// Where a user lies for jurisdiction checks: the chain of the node they are bound to.
    fn place_of(&self, jurisdiction: &str) -> Result<Chain, EngineError> {
        self.chain_of(jurisdiction)
            .ok_or_else(|| EngineError::NotFound { entity: "jurisdiction", key: jurisdiction.to_string() })
    }

    fn bindable(&self, code: &str) -> Result<Chain, EngineError> {
        let node = self
            .jurisdiction(code)
            .ok_or_else(|| EngineError::NotFound { entity: "jurisdiction", key: code.to_string() })?;
        if !node.kind.can_bind_users() {
            return Err(fangkong_core::auth::account::AccountError::Jurisdiction(node.kind).into());
        }
        self.place_of(code)
    }

    /// The account named `username`, for a caller who passed the role check. An account that
    /// does not exist is refused like one outside the caller's jurisdiction (and audited
    /// alike), unless the caller's jurisdiction is the whole city: otherwise a district's
    /// administrator could learn which names exist in other districts.
    async fn existing_user(
        &self,
        caller: &Caller,
        action: Action,
        audit_action: &str,
        username: &str,
    ) -> Result<User, EngineError> {
        if let Some(user) = self.identity.user_by_name(username) {
            return Ok(user);
        }
        let city = self.city_chain();
        self.authorize(caller, action, Some(&city), audit_action, Some(("user", username))).await?;
        Err(EngineError::NotFound { entity: "user", key: username.into() })
    }

    /// The checks before acting on an existing account: the role first (so that callers
    /// without it learn nothing, not even whether the account exists), then the account's
    /// jurisdiction (an unknown account answers the same), then separation of duties.
    /// Refusals are audited.
    async fn authorize_on_user(
        &self,
        caller: &Caller,
        action: Action,
        audit_action: &str,
        username: &str,
        extra_roles: &[Role],
    ) -> Result<User, EngineError> {
        let target = Some(("user", username));
        self.authorize(caller, action, None, audit_action, target).await?;
        let user = self.existing_user(caller, action, audit_action, username).await?;
        let place = self.place_of(&user.jurisdiction)?;
        self.authorize(caller, action, Some(&place), audit_action, target).await?;
        let roles: Vec<Role> = std::iter::once(user.role).chain(extra_roles.iter().copied()).collect();
        self.check_separation(caller, &roles, audit_action, username).await?;
        Ok(user)
    }

    async fn check_separation(
        &self,
        caller: &Caller,
        roles: &[Role],
        audit_action: &str,
        username: &str,
    ) -> Result<(), EngineError> {
        match check_account_roles(&caller.actor, roles) {
            Err(denial) => Err(self.refuse_on_user(caller, denial, audit_action, username).await),
            Ok(()) => Ok(()),
        }
    }

    /// Refuses a change the caller would make to their own account that shuts them out
    /// (see [`check_own_account`]).
    async fn check_own(
        &self,
        caller: &Caller,
        username: &str,
        shuts_out: bool,
        audit_action: &str,
    ) -> Result<(), EngineError> {
        match check_own_account(&caller.actor, username, shuts_out) {
            Err(denial) => Err(self.refuse_on_user(caller, denial, audit_action, username).await),
            Ok(()) => Ok(()),
        }
    }

    /// Records a refusal to act on `username` and returns it as the error to answer.
    async fn refuse_on_user(&self, caller: &Caller, denial: Denial, audit_action: &str, username: &str) -> EngineError {
        let entry =
            caller.entry(self.now(), audit_action, Outcome::Denied).target("user", username).detail(denial.to_string());
        match self.store.append_audit(&entry).await {
            Ok(_) => EngineError::Denied(denial),
            Err(error) => error.into(),
        }
    }

    /// Creates a user with an initial password (which the policy must accept).
    pub async fn create_user(&self, caller: &Caller, new: NewUser, password: &str) -> Result<User, EngineError> {
        let target = Some(("user", new.username.as_str()));
        self.authorize(caller, Action::ManageUsers, None, "user.create", target).await?;
        check_username(&new.username)?;
        check_display_name(&new.display_name)?;
        let place = self.bindable(&new.jurisdiction)?;
        self.authorize(caller, Action::ManageUsers, Some(&place), "user.create", target).await?;
        self.check_separation(caller, &[new.role], "user.create", &new.username).await?;
        check_password(password, &new.username)?;
        let password_hash = self.hash_password_off_thread(password).await;
        let _held = self.admin_writes.lock().await;
        let now = self.now();
        let user = User {
            id: 0,
            username: new.username,
            display_name: new.display_name.trim().to_string(),
            role: new.role,
            jurisdiction: new.jurisdiction,
            password_hash,
            password_changed_at: now,
            totp_secret: None,
            totp_pending: false,
            totp_last_step: None,
            login: LoginState::default(),
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        let entry = caller
            .entry(now, "user.create", Outcome::Allowed)
            .target("user", &user.username)
            .detail(format!("role {} in {}", user.role, user.jurisdiction));
        let summary = AccountSummary::from(&user);
        let outbox = Outbox::of_new_rows(now, move |ids| {
            vec![Event::AccountChanged(AccountSummary { user_id: ids[0], ..summary.clone() })]
        });
        let stored = self.store.insert_user(&user, Audited::new(entry, outbox)).await?;
        self.identity.put_user(stored.clone());
        self.publish(now, Event::AccountChanged(AccountSummary::from(&stored)));
        Ok(stored)
    }

    /// Changes a user's name, role, jurisdiction or status. The caller must administer the
    /// user's current jurisdiction and, when moving them, the new one. A change of role or
    /// jurisdiction, or a disable, ends their sessions.
    pub async fn update_user(&self, caller: &Caller, username: &str, change: UserChange) -> Result<User, EngineError> {
        let extra: Vec<Role> = change.role.into_iter().collect();
        let user = self.authorize_on_user(caller, Action::ManageUsers, "user.update", username, &extra).await?;
        let shuts_out = change.disabled == Some(true)
            || change.role.is_some_and(|role| role != user.role)
            || change.jurisdiction.as_ref().is_some_and(|code| *code != user.jurisdiction);
        self.check_own(caller, username, shuts_out, "user.update").await?;
        if let Some(target) = &change.jurisdiction {
            let new_place = self.bindable(target)?;
            let target_user = Some(("user", username));
            self.authorize(caller, Action::ManageUsers, Some(&new_place), "user.update", target_user).await?;
        }
        if let Some(name) = &change.display_name {
            check_display_name(name)?;
        }
        let held = self.admin_writes.lock().await;
        let now = self.now();
        let (current, changed) = self
            .change_account(&held, username, |current| {
                let mut notes = Vec::new();
                let mut updated = current.clone();
                if let Some(name) = change.display_name.as_deref().map(str::trim).filter(|n| *n != current.display_name)
                {
                    updated.display_name = name.to_string();
                    notes.push("display_name".to_string());
                }
                if let Some(role) = change.role.filter(|r| *r != current.role) {
                    updated.role = role;
                    notes.push(format!("role {} → {role}", current.role));
                }
                if let Some(code) = change.jurisdiction.as_ref().filter(|c| **c != current.jurisdiction) {
                    notes.push(format!("jurisdiction {} → {code}", current.jurisdiction));
                    updated.jurisdiction = code.clone();
                }
                if let Some(disabled) = change.disabled.filter(|d| *d != current.disabled) {
                    updated.disabled = disabled;
                    notes.push(if disabled { "disabled" } else { "enabled" }.to_string());
                }
                if change.clear_second_factor && current.totp_secret.is_some() {
                    updated.totp_secret = None;
                    updated.totp_pending = false;
                    updated.totp_last_step = None;
                    notes.push("second factor removed".to_string());
                }
                if notes.is_empty() {
                    return Ok(None);
                }
                let end_sessions = updated.role != current.role
                    || updated.jurisdiction != current.jurisdiction
                    || (updated.disabled && !current.disabled);
                let entry = caller
                    .entry(now, "user.update", Outcome::Allowed)
                    .target("user", username)
                    .detail(notes.join("; "));
                Ok(Some(AccountChange { user: updated, end_sessions, entries: vec![entry] }))
            })
            .await?;
        match changed {
            Some(updated) => Ok(updated),
            None => {
                // Nothing changed, but the account was returned to the caller: on the record.
                let entry =
                    caller.entry(now, "user.update", Outcome::Allowed).target("user", username).detail("no change");
                self.store.append_audit(&entry).await?;
                Ok(current)
            }
        }
    }

    /// Locks an account until an administrator unlocks it; its sessions end.
    pub async fn lock_user(&self, caller: &Caller, username: &str) -> Result<User, EngineError> {
        self.set_lock(caller, username, Some(ADMIN_LOCK), "user.lock").await
    }

    /// Lifts a lock, administrative or after failed sign-ins, and clears the failure count.
    pub async fn unlock_user(&self, caller: &Caller, username: &str) -> Result<User, EngineError> {
        self.set_lock(caller, username, None, "user.unlock").await
    }

    async fn set_lock(
        &self,
        caller: &Caller,
        username: &str,
        until: Option<Timestamp>,
        action: &str,
    ) -> Result<User, EngineError> {
        self.authorize_on_user(caller, Action::ManageUsers, action, username, &[]).await?;
        self.check_own(caller, username, until.is_some(), action).await?;
        let held = self.admin_writes.lock().await;
        let now = self.now();
        let (current, changed) = self
            .change_account(&held, username, |current| {
                let user = User { login: LoginState { failed_attempts: 0, locked_until: until }, ..current.clone() };
                let entry = caller.entry(now, action, Outcome::Allowed).target("user", username);
                Ok(Some(AccountChange { user, end_sessions: until.is_some(), entries: vec![entry] }))
            })
            .await?;
        Ok(changed.unwrap_or(current))
    }

    /// Sets a new password for a user (who should change it at first sign-in); their
    /// sessions end.
    pub async fn reset_password(&self, caller: &Caller, username: &str, password: &str) -> Result<(), EngineError> {
        self.authorize_on_user(caller, Action::ManageUsers, "user.reset_password", username, &[]).await?;
        check_password(password, username)?;
        let hash = self.hash_password_off_thread(password).await;
        let held = self.admin_writes.lock().await;
        let now = self.now();
        self.change_account(&held, username, |current| {
            let user = User {
                password_hash: hash.clone(),
                password_changed_at: now,
                login: LoginState::default(),
                ..current.clone()
            };
            let entry = caller.entry(now, "user.reset_password", Outcome::Allowed).target("user", username);
            Ok(Some(AccountChange { user, end_sessions: true, entries: vec![entry] }))
        })
        .await?;
        Ok(())
    }

    /// The users the caller administers, by username. A read of personal data.
    pub async fn users(&self, caller: &Caller) -> Result<Vec<User>, EngineError> {
        self.authorize(caller, Action::ReadUsers, None, "user.list", None).await?;
        let mut visible: Vec<User> = {
            let users = self.identity.users.read().expect("users lock");
            users.by_id.values().cloned().collect()
        };
        visible.retain(|user| {
            self.chain_of(&user.jurisdiction)
                .is_some_and(|chain| caller.actor.check_in(Action::ReadUsers, &chain).is_ok())
        });
        visible.sort_by(|a, b| a.username.cmp(&b.username));
        let scope = match &caller.actor {
            fangkong_core::auth::Actor::User(user) => user.scope.code.clone(),
            _ => "*".to_string(),
        };
        self.audit_personal_read(
            caller,
            "user.list",
            ("jurisdiction", &scope),
            Some(format!("{} users", visible.len())),
        )
        .await?;
        Ok(visible)
    }

    /// One user. A read of personal data.
    pub async fn user(&self, caller: &Caller, username: &str) -> Result<User, EngineError> {
        let target = Some(("user", username));
        self.authorize(caller, Action::ReadUsers, None, "user.read", target).await?;
        let user = self.existing_user(caller, Action::ReadUsers, "user.read", username).await?;
        let place = self.place_of(&user.jurisdiction)?;
        self.authorize(caller, Action::ReadUsers, Some(&place), "user.read", target).await?;
        self.audit_personal_read(caller, "user.read", ("user", username), None).await?;
        Ok(user)
    }
}
