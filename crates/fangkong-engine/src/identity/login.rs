//! Signing in and out, authenticating requests, and a user's own account: password and
//! second factor.
//!
//! Every answer to a sign-in takes the time of one password verification, whatever the
//! reason for it (unknown name, locked account, wrong password), so neither the answer nor
//! its timing tells whether a username exists. A wrong password for a real account and any
//! password for a name without one also cost the same store work after it: the
//! administrative lock, one read of the account's row, one write transaction with the same
//! audit records (see [`Engine::refuse_unknown_user`] beside [`Engine::record_failure`]).

use fangkong_core::audit::{AuditEntry, Outcome};
use fangkong_core::auth::account::{Session, User, check_username};
use fangkong_core::auth::lockout::LoginState;
use fangkong_core::auth::password::check_password;
use fangkong_core::auth::session::SessionState;
use fangkong_core::auth::{Action, Actor, UserActor, totp};
use fangkong_core::event::Event;
use fangkong_core::time::Timestamp;
use fangkong_store::{Audited, Outbox};

use super::change::AccountChange;
use crate::crypto;
use crate::{Caller, Engine, EngineError};

/// A successful sign-in. The token is shown once and never stored.
#[derive(Clone)]
pub struct LoginSuccess {
    pub token: String,
    pub user: User,
    /// When the session ends at the latest (absolute lifetime).
    pub expires_at: Timestamp,
    /// How long the session survives without use.
    pub idle_timeout_secs: i64,
}

impl std::fmt::Debug for LoginSuccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSuccess")
            .field("token", &"<redacted>")
            .field("user", &self.user.username)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A request's proof of identity, as checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub actor: UserActor,
    /// When the session ends if it is not used again.
    pub ends_at: Timestamp,
}

/// A second factor waiting to be confirmed with a first code.
#[derive(Clone)]
pub struct TotpSetup {
    /// Base32, to type into an authenticator app.
    pub secret_base32: String,
    /// `otpauth://` URI, usually shown as a QR code.
    pub uri: String,
}

impl std::fmt::Debug for TotpSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSetup { <redacted> }")
    }
}

const TOTP_ISSUER: &str = "Fangkong";
/// Longest username written to the audit trail for a failed attempt.
const MAX_LOGGED_USERNAME: usize = 64;

fn locked(state: LoginState, now: Timestamp) -> EngineError {
    let until = state.locked_until.unwrap_or(now);
    EngineError::AccountLocked { retry_after_secs: (until.millis_since(now) + 999) / 1000 }
}

impl Engine {
    /// Signs a user in. Wrong password, unknown user and disabled account all answer
    /// [`EngineError::InvalidCredentials`]; after too many failures, known or not, the
    /// answer is [`EngineError::AccountLocked`]. Every attempt is audited.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        totp_code: Option<&str>,
        ip: Option<&str>,
    ) -> Result<LoginSuccess, EngineError> {
        let now = self.now();
        let user = self.identity.user_by_name(username);
        // The same work for every answer: verify against the account's hash, or a dummy.
        let hash = user.as_ref().map_or(self.identity.dummy_hash.clone(), |u| u.password_hash.clone());
        let password_ok = self.verify_password_off_thread(password, &hash).await && user.is_some();
        let Some(user) = user else {
            return self.refuse_unknown_user(username, ip, now).await;
        };
        if user.login.is_locked(now) {
            // Recorded, not counted (see `record_failure`), at a failure's cost.
            return self.record_failure(username, "auth.login", "account locked", ip).await;
        }
        if !password_ok || user.disabled {
            let reason = if user.disabled { "account disabled" } else { "wrong password" };
            return self.record_failure(username, "auth.login", reason, ip).await;
        }
        let mut totp_step = None;
        if user.has_second_factor() {
            let Some(code) = totp_code else {
                // The password was right; asking for the code is not a failed attempt.
                let entry = self
                    .anonymous_entry(now, username, ip, "auth.login", Outcome::Failed)
                    .detail("one-time code required");
                self.store.append_audit(&entry).await?;
                return Err(EngineError::TotpRequired);
            };
            match self.check_totp(&user, code, now) {
                Some(step) => totp_step = Some(step),
                None => return self.record_failure(username, "auth.login", "wrong one-time code", ip).await,
            }
        }
        self.open_session(&user, totp_step, ip).await
    }

    async fn verify_password_off_thread(&self, password: &str, phc: &str) -> bool {
        let (password, phc) = (password.to_string(), phc.to_string());
        tokio::task::spawn_blocking(move || crypto::verify_password(&password, &phc)).await.unwrap_or(false)
    }

    /// A failed attempt on a name with no account: counted and locked like a real account,
    /// and at the same cost in the store as a real account's failure ([`Engine::record_failure`]:
    /// the administrative lock, a read of the row, one write), so the time of the answer does
    /// not tell the two apart.
    async fn refuse_unknown_user(
        &self,
        username: &str,
        ip: Option<&str>,
        now: Timestamp,
    ) -> Result<LoginSuccess, EngineError> {
        let _held = self.admin_writes.lock().await;
        // The read a real account's failure makes (`change_account`); its answer is not
        // needed: an account another process just created is signed in to next time.
        let _ = self.store.get_user_by_username(username).await?;
        // A name no account could have (too long, wrong characters) is not worth tracking:
        // no real account answers for it either, so nothing is revealed.
        let trackable = check_username(username).is_ok();
        let state = if trackable {
            let mut unknown = self.identity.unknown_logins.lock().expect("unknown logins lock");
            if unknown.len() >= super::MAX_UNKNOWN_USERNAMES && !unknown.contains_key(username) {
                unknown.retain(|_, state| state.is_locked(now));
                if unknown.len() >= super::MAX_UNKNOWN_USERNAMES {
                    unknown.clear();
                }
            }
            let current = unknown.get(username).copied().unwrap_or_default();
            if current.is_locked(now) {
                Err(current)
            } else {
                let (next, newly_locked) = current.after_failure(now, &self.config.lockout);
                unknown.insert(username.to_string(), next);
                Ok((next, newly_locked))
            }
        } else {
            Ok((LoginState::default(), false))
        };
        let (detail, newly_locked, result) = match state {
            Err(current) => ("account locked", false, Err(locked(current, now))),
            Ok((next, true)) => ("unknown user", true, Err(locked(next, now))),
            Ok((_, false)) => ("unknown user", false, Err(EngineError::InvalidCredentials)),
        };
        let logged: String = username.chars().take(MAX_LOGGED_USERNAME).collect();
        let mut entries = vec![self.anonymous_entry(now, &logged, ip, "auth.login", Outcome::Failed).detail(detail)];
        if newly_locked {
            entries.push(self.anonymous_entry(now, &logged, ip, "auth.lockout", Outcome::Failed));
        }
        // One transaction, like the real account's row and records.
        self.store.append_audits(&entries).await?;
        result
    }

    /// Counts a failed attempt (`action`: a sign-in, or a password change with the wrong
    /// current password) against a real account, locking it at the threshold. An account
    /// locked meanwhile stays locked: the attempt is recorded, not counted.
    async fn record_failure(
        &self,
        username: &str,
        action: &str,
        reason: &str,
        ip: Option<&str>,
    ) -> Result<LoginSuccess, EngineError> {
        let held = self.admin_writes.lock().await;
        let now = self.now();
        let threshold = self.config.lockout.threshold;
        let entry = |outcome_detail: &str| -> AuditEntry {
            self.anonymous_entry(now, username, ip, action, Outcome::Failed).detail(outcome_detail)
        };
        let (current, changed) = self
            .change_account(&held, username, |current| {
                if current.login.is_locked(now) {
                    return Ok(None);
                }
                let (login, newly_locked) = current.login.after_failure(now, &self.config.lockout);
                let mut entries = vec![entry(reason)];
                if newly_locked {
                    entries.push(
                        self.anonymous_entry(now, username, ip, "auth.lockout", Outcome::Failed)
                            .target("user", username)
                            .detail(format!("{threshold} consecutive failures")),
                    );
                }
                Ok(Some(AccountChange { user: User { login, ..current.clone() }, end_sessions: false, entries }))
            })
            .await?;
        match changed {
            None => {
                self.store.append_audit(&entry("account locked")).await?;
                Err(locked(current.login, now))
            }
            Some(updated) if updated.login.is_locked(now) => Err(locked(updated.login, now)),
            Some(_) => Err(EngineError::InvalidCredentials),
        }
    }

    fn check_totp(&self, user: &User, code: &str, now: Timestamp) -> Option<i64> {
        let secret = self.open_totp_secret(user)?;
        totp::verify(&secret, code, now.as_millis().div_euclid(1000), user.totp_last_step)
    }

    fn open_totp_secret(&self, user: &User) -> Option<Vec<u8>> {
        let sealed = user.totp_secret.as_ref()?;
        crypto::open(&self.config.keys.totp_secrets(), user.username.as_bytes(), sealed)
    }

    /// Opens a session for `verified` (whose password, and code, were just checked). Under
    /// the administrative lock, the account is re-read: if it was locked, disabled, given a
    /// new password or its code used meanwhile, the sign-in fails. The lock is held until
    /// the session is stored, so a lock or reset cannot miss it.
    async fn open_session(
        &self,
        verified: &User,
        totp_step: Option<i64>,
        ip: Option<&str>,
    ) -> Result<LoginSuccess, EngineError> {
        let held = self.admin_writes.lock().await;
        let now = self.now();
        let decided = self
            .change_account(&held, &verified.username, |current| {
                if current.disabled || current.password_hash != verified.password_hash {
                    return Err(EngineError::InvalidCredentials);
                }
                if current.login.is_locked(now) {
                    return Err(locked(current.login, now));
                }
                if let (Some(step), Some(used)) = (totp_step, current.totp_last_step)
                    && step <= used
                {
                    return Err(EngineError::InvalidCredentials);
                }
                // A success resets the failure count and uses up the one-time code's step.
                if current.login == LoginState::default() && totp_step.is_none() {
                    return Ok(None);
                }
                let user = User {
                    login: LoginState::default(),
                    totp_last_step: totp_step.or(current.totp_last_step),
                    ..current.clone()
                };
                Ok(Some(AccountChange { user, end_sessions: false, entries: Vec::new() }))
            })
            .await;
        let user = match decided {
            Ok((_, Some(updated))) => updated,
            Ok((current, None)) => current,
            Err(error) => {
                let entry = self
                    .anonymous_entry(now, &verified.username, ip, "auth.login", Outcome::Failed)
                    .detail(format!("account changed during sign-in: {error}"));
                self.store.append_audit(&entry).await?;
                return Err(error);
            }
        };
        let token = crypto::new_token();
        let session = Session {
            token_hash: crypto::token_hash(&token),
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            revoked_at: None,
            ip: ip.map(str::to_string),
        };
        let mut entry = Caller::new(Actor::User(self.user_actor(&user)?)).entry(now, "auth.login", Outcome::Allowed);
        entry.ip = session.ip.clone();
        let signed_in = Event::SignedIn(session.clone());
        self.store.insert_session(&session, Audited::new(entry, Outbox::new(now, [&signed_in]))).await?;
        self.publish(now, signed_in);
        drop(held);
        Ok(LoginSuccess {
            token,
            expires_at: now.plus_millis(self.config.sessions.absolute_millis),
            idle_timeout_secs: self.config.sessions.idle_millis / 1000,
            user,
        })
    }

    /// The user behind a bearer token, if the session is open; using it resets the idle
    /// clock.
    pub fn authenticate(&self, token: &str) -> Result<Authenticated, EngineError> {
        self.check_session(token, true)
    }

    /// Whether `token`'s session is still open, without counting this as use (for a live
    /// stream that re-checks its session: watching is not activity, so the idle timeout
    /// still ends an unattended console's session).
    pub fn session_still_open(&self, token: &str) -> Result<Authenticated, EngineError> {
        self.check_session(token, false)
    }

    fn check_session(&self, token: &str, touch: bool) -> Result<Authenticated, EngineError> {
        let hash = crypto::token_hash(token);
        let now = self.now();
        let mut sessions = self.identity.sessions.write().expect("sessions lock");
        let live = sessions.get_mut(&hash).ok_or(EngineError::Unauthenticated)?;
        let policy = &self.config.sessions;
        match policy.state(live.session.created_at, live.session.last_used_at, now) {
            SessionState::Active => {}
            SessionState::Idle | SessionState::Expired => {
                sessions.remove(&hash);
                return Err(EngineError::SessionExpired);
            }
        }
        let user = self.identity.user_by_id(live.session.user_id).ok_or(EngineError::Unauthenticated)?;
        if user.disabled || user.login.is_locked(now) {
            sessions.remove(&hash);
            return Err(EngineError::Unauthenticated);
        }
        if touch {
            live.session.last_used_at = now;
        }
        let ends_at = policy.ends_at(live.session.created_at, now);
        drop(sessions);
        Ok(Authenticated { actor: self.user_actor(&user)?, ends_at })
    }

    pub(crate) fn user_actor(&self, user: &User) -> Result<UserActor, EngineError> {
        Ok(UserActor {
            user_id: user.id,
            username: user.username.clone(),
            role: user.role,
            scope: self.scope_of(&user.jurisdiction)?,
        })
    }

    /// Ends the session of `token`.
    pub async fn logout(&self, caller: &Caller, token: &str) -> Result<(), EngineError> {
        let hash = crypto::token_hash(token);
        // Under the administrative lock, so an account refresh cannot bring it back.
        let held = self.admin_writes.lock().await;
        let now = self.now();
        let user_id = self.identity.sessions.read().expect("sessions lock").get(&hash).map(|l| l.session.user_id);
        let signed_out = user_id.map(|user_id| Event::SignedOut { user_id, token_hash: hash });
        let entry = caller.entry(now, "auth.logout", Outcome::Allowed);
        self.store.revoke_session(hash, now, Audited::new(entry, Outbox::new(now, &signed_out))).await?;
        if let Some(event) = signed_out {
            self.publish(now, event);
        }
        drop(held);
        Ok(())
    }

    /// The caller's own account.
    pub fn me(&self, caller: &Caller) -> Result<User, EngineError> {
        self.own_account(caller)
    }

    /// What the signed-in caller's role may do, in the permission table's order (the
    /// console shows only these screens).
    pub fn permissions(&self, caller: &Caller) -> Result<Vec<Action>, EngineError> {
        let user = self.own_account(caller)?;
        Ok(fangkong_core::auth::PERMISSIONS
            .iter()
            .filter(|(_, roles)| roles.contains(&user.role))
            .map(|(action, _)| *action)
            .collect())
    }

    fn own_account(&self, caller: &Caller) -> Result<User, EngineError> {
        caller.actor.check(Action::ManageOwnAccount).map_err(EngineError::Denied)?;
        let Actor::User(actor) = &caller.actor else { return Err(EngineError::Unauthenticated) };
        self.identity.user_by_id(actor.user_id).ok_or(EngineError::Unauthenticated)
    }

    /// Changes the caller's own password; all their sessions end, the current one too. A
    /// wrong current password counts as a failed sign-in (a stolen session cannot be used
    /// to guess the password without limit).
    pub async fn change_own_password(&self, caller: &Caller, current: &str, new: &str) -> Result<(), EngineError> {
        let user = self.own_account(caller)?;
        if !self.verify_password_off_thread(current, &user.password_hash).await {
            let failure = self.record_failure(
                &user.username,
                "auth.password_change",
                "wrong current password",
                caller.ip.as_deref(),
            );
            return failure.await.map(|_| ());
        }
        check_password(new, &user.username)?;
        let hash = self.hash_password_off_thread(new).await;
        let held = self.admin_writes.lock().await;
        let now = self.now();
        self.change_account(&held, &user.username, |stored| {
            if stored.password_hash != user.password_hash {
                return Err(EngineError::InvalidCredentials);
            }
            let entry = caller.entry(now, "auth.password_change", Outcome::Allowed).target("user", &user.username);
            let changed = User { password_hash: hash.clone(), password_changed_at: now, ..stored.clone() };
            Ok(Some(AccountChange { user: changed, end_sessions: true, entries: vec![entry] }))
        })
        .await?;
        Ok(())
    }

    pub(crate) async fn hash_password_off_thread(&self, password: &str) -> String {
        let (password, cost) = (password.to_string(), self.config.password_cost);
        tokio::task::spawn_blocking(move || crypto::hash_password(&password, cost))
            .await
            .expect("password hashing does not panic")
    }

    /// Starts setting up a second factor: returns the secret to put into an authenticator
    /// app. It takes effect once [`Engine::confirm_totp`] accepts a first code.
    pub async fn begin_totp(&self, caller: &Caller) -> Result<TotpSetup, EngineError> {
        let user = self.own_account(caller)?;
        let secret = crypto::random_bytes::<{ totp::SECRET_BYTES }>();
        let sealed = crypto::seal(&self.config.keys.totp_secrets(), user.username.as_bytes(), &secret);
        let held = self.admin_writes.lock().await;
        let now = self.now();
        self.change_account(&held, &user.username, |stored| {
            if stored.has_second_factor() {
                return Err(EngineError::Invalid {
                    field: "totp",
                    message: "a second factor is already set up; an administrator can reset it".into(),
                });
            }
            let entry = caller.entry(now, "auth.totp_setup", Outcome::Allowed).target("user", &user.username);
            let changed =
                User { totp_secret: Some(sealed.clone()), totp_pending: true, totp_last_step: None, ..stored.clone() };
            Ok(Some(AccountChange { user: changed, end_sessions: false, entries: vec![entry] }))
        })
        .await?;
        Ok(TotpSetup {
            secret_base32: totp::base32_encode(&secret),
            uri: totp::otpauth_uri(TOTP_ISSUER, &user.username, &secret),
        })
    }

    /// Confirms a pending second factor with a code from the app; from then on sign-in
    /// needs a code.
    pub async fn confirm_totp(&self, caller: &Caller, code: &str) -> Result<(), EngineError> {
        let user = self.own_account(caller)?;
        let held = self.admin_writes.lock().await;
        let now = self.now();
        let result = self
            .change_account(&held, &user.username, |stored| {
                if !stored.totp_pending {
                    return Err(EngineError::Invalid {
                        field: "code",
                        message: "no second factor is waiting to be confirmed".into(),
                    });
                }
                let secret = self.open_totp_secret(stored).ok_or(EngineError::InvalidTotp)?;
                let step = totp::verify(&secret, code, now.as_millis().div_euclid(1000), None)
                    .ok_or(EngineError::InvalidTotp)?;
                let entry = caller.entry(now, "auth.totp_enable", Outcome::Allowed).target("user", &user.username);
                let changed = User { totp_pending: false, totp_last_step: Some(step), ..stored.clone() };
                Ok(Some(AccountChange { user: changed, end_sessions: false, entries: vec![entry] }))
            })
            .await;
        if let Err(EngineError::InvalidTotp) = result {
            let entry = caller.entry(now, "auth.totp_enable", Outcome::Failed).detail("wrong code");
            self.store.append_audit(&entry).await?;
        }
        result.map(|_| ())
    }
}
