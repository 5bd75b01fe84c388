//! Signing in and out, authenticating requests, and a user's own account: password and
//! second factor.

use fangkong_core::audit::Outcome;
use fangkong_core::auth::account::{Session, User};
use fangkong_core::auth::lockout::LoginState;
use fangkong_core::auth::password::check_password;
use fangkong_core::auth::session::SessionState;
use fangkong_core::auth::{Action, Actor, UserActor, totp};
use fangkong_core::event::Event;
use fangkong_core::time::Timestamp;

use super::LiveSession;
use crate::crypto;
use crate::{Caller, Engine, EngineError};

/// A successful sign-in. The token is shown once and never stored.
#[derive(Clone, Debug)]
pub struct LoginSuccess {
    pub token: String,
    pub user: User,
    /// When the session ends at the latest (absolute lifetime).
    pub expires_at: Timestamp,
    /// How long the session survives without use.
    pub idle_timeout_secs: i64,
}

/// A request's proof of identity, as checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub actor: UserActor,
    /// When the session ends if it is not used again.
    pub ends_at: Timestamp,
}

/// A second factor waiting to be confirmed with a first code.
#[derive(Clone, Debug)]
pub struct TotpSetup {
    /// Base32, to type into an authenticator app.
    pub secret_base32: String,
    /// `otpauth://` URI, usually shown as a QR code.
    pub uri: String,
}

const TOTP_ISSUER: &str = "Fangkong";

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
        let Some(user) = self.identity.user_by_name(username) else {
            return self.refuse_unknown_user(username, password, ip, now).await;
        };
        if user.login.is_locked(now) {
            let entry = self.anonymous_entry(now, username, ip, "auth.login", Outcome::Failed).detail("account locked");
            self.store.append_audit(&entry).await?;
            return Err(locked(user.login, now));
        }
        let password_ok = self.verify_password_off_thread(password, &user.password_hash).await;
        if !password_ok || user.disabled {
            let reason = if user.disabled { "account disabled" } else { "wrong password" };
            return self.record_failure(&user, reason, ip).await;
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
                None => return self.record_failure(&user, "wrong one-time code", ip).await,
            }
        }
        self.open_session(user, totp_step, ip, now).await
    }

    async fn verify_password_off_thread(&self, password: &str, phc: &str) -> bool {
        let (password, phc) = (password.to_string(), phc.to_string());
        tokio::task::spawn_blocking(move || crypto::verify_password(&password, &phc)).await.unwrap_or(false)
    }

    async fn refuse_unknown_user(
        &self,
        username: &str,
        password: &str,
        ip: Option<&str>,
        now: Timestamp,
    ) -> Result<LoginSuccess, EngineError> {
        // Spend the same time as a real check, then count the failure like a real account.
        let _ = self.verify_password_off_thread(password, &self.identity.dummy_hash).await;
        let state = {
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
        };
        let (detail, result) = match state {
            Err(current) => ("account locked", Err(locked(current, now))),
            Ok((next, true)) => ("unknown user; locked after repeated failures", Err(locked(next, now))),
            Ok((_, false)) => ("unknown user", Err(EngineError::InvalidCredentials)),
        };
        let entry = self.anonymous_entry(now, username, ip, "auth.login", Outcome::Failed).detail(detail);
        self.store.append_audit(&entry).await?;
        if detail.contains("locked after") {
            let lockout = self.anonymous_entry(now, username, ip, "auth.lockout", Outcome::Failed);
            self.store.append_audit(&lockout).await?;
        }
        result
    }

    /// Counts a failed attempt against a real account, locking it at the threshold.
    async fn record_failure(&self, user: &User, reason: &str, ip: Option<&str>) -> Result<LoginSuccess, EngineError> {
        let _serial = self.admin_writes.lock().await;
        let now = self.now();
        // Re-read under the lock: concurrent failures must all count.
        let current = self.identity.user_by_id(user.id).unwrap_or_else(|| user.clone());
        let (login, newly_locked) = current.login.after_failure(now, &self.config.lockout);
        let updated = User { login, updated_at: now, ..current };
        let mut entries =
            vec![self.anonymous_entry(now, &user.username, ip, "auth.login", Outcome::Failed).detail(reason)];
        if newly_locked {
            entries.push(
                self.anonymous_entry(now, &user.username, ip, "auth.lockout", Outcome::Failed)
                    .target("user", &user.username)
                    .detail(format!("{} consecutive failures", self.config.lockout.threshold)),
            );
        }
        self.store.update_user(&updated, None, &entries).await?;
        if newly_locked {
            self.publish_account(&updated);
        }
        self.identity.put_user(updated);
        if newly_locked { Err(locked(login, now)) } else { Err(EngineError::InvalidCredentials) }
    }

    fn check_totp(&self, user: &User, code: &str, now: Timestamp) -> Option<i64> {
        let secret = self.open_totp_secret(user)?;
        totp::verify(&secret, code, now.as_millis().div_euclid(1000), user.totp_last_step)
    }

    fn open_totp_secret(&self, user: &User) -> Option<Vec<u8>> {
        let sealed = user.totp_secret.as_ref()?;
        crypto::open(&self.config.keys.totp_secrets(), user.username.as_bytes(), sealed)
    }

    async fn open_session(
        &self,
        user: User,
        totp_step: Option<i64>,
        ip: Option<&str>,
        now: Timestamp,
    ) -> Result<LoginSuccess, EngineError> {
        let token = crypto::new_token();
        let session = Session {
            token_hash: crypto::token_hash(&token),
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            revoked_at: None,
            ip: ip.map(str::to_string),
        };
        let actor = Actor::User(self.user_actor(&user)?);
        let mut entry = Caller::new(actor).entry(now, "auth.login", Outcome::Allowed);
        entry.ip = session.ip.clone();
        // A success resets the failure count and uses up the one-time code's step.
        if user.login != LoginState::default() || totp_step.is_some() {
            let _serial = self.admin_writes.lock().await;
            let current = self.identity.user_by_id(user.id).unwrap_or(user.clone());
            // Two sign-ins racing with the same code: only the first to get here uses it.
            if let (Some(step), Some(used)) = (totp_step, current.totp_last_step)
                && step <= used
            {
                let entry = self
                    .anonymous_entry(now, &user.username, ip, "auth.login", Outcome::Failed)
                    .detail("one-time code already used");
                self.store.append_audit(&entry).await?;
                return Err(EngineError::InvalidCredentials);
            }
            let updated = User {
                login: LoginState::default(),
                totp_last_step: totp_step.or(current.totp_last_step),
                updated_at: now,
                ..current
            };
            self.store.update_user(&updated, None, &[]).await?;
            if user.login.locked_until.is_some() {
                // An expired lock is cleared: the account's status changed.
                self.publish_account(&updated);
            }
            self.identity.put_user(updated);
        }
        self.store.insert_session(&session, &entry).await?;
        self.publish(now, Event::SignedIn { user_id: user.id });
        self.identity.sessions.write().expect("sessions lock").insert(
            session.token_hash,
            LiveSession { stored_last_used: session.last_used_at, session: session.clone() },
        );
        Ok(LoginSuccess {
            token,
            user: self.identity.user_by_id(user.id).unwrap_or(user),
            expires_at: now.plus_millis(self.config.sessions.absolute_millis),
            idle_timeout_secs: self.config.sessions.idle_millis / 1000,
        })
    }

    /// The user behind a bearer token, if the session is open; using it resets the idle
    /// clock.
    pub fn authenticate(&self, token: &str) -> Result<Authenticated, EngineError> {
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
        live.session.last_used_at = now;
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
        let now = self.now();
        self.store.revoke_session(hash, now, &caller.entry(now, "auth.logout", Outcome::Allowed)).await?;
        let ended = self.identity.sessions.write().expect("sessions lock").remove(&hash);
        if let Some(live) = ended {
            self.publish(now, Event::SignedOut { user_id: live.session.user_id });
        }
        Ok(())
    }

    /// The caller's own account.
    pub fn me(&self, caller: &Caller) -> Result<User, EngineError> {
        let user = self.own_account(caller)?;
        Ok(user)
    }

    fn own_account(&self, caller: &Caller) -> Result<User, EngineError> {
        caller.actor.check(Action::ManageOwnAccount).map_err(EngineError::Denied)?;
        let Actor::User(actor) = &caller.actor else { return Err(EngineError::Unauthenticated) };
        self.identity.user_by_id(actor.user_id).ok_or(EngineError::Unauthenticated)
    }

    /// Changes the caller's own password; all their sessions end, the current one too.
    pub async fn change_own_password(&self, caller: &Caller, current: &str, new: &str) -> Result<(), EngineError> {
        let user = self.own_account(caller)?;
        if !self.verify_password_off_thread(current, &user.password_hash).await {
            let entry =
                caller.entry(self.now(), "auth.password_change", Outcome::Failed).detail("wrong current password");
            self.store.append_audit(&entry).await?;
            return Err(EngineError::InvalidCredentials);
        }
        check_password(new, &user.username)?;
        let hash = self.hash_password_off_thread(new).await;
        let _serial = self.admin_writes.lock().await;
        let now = self.now();
        let current_user = self.identity.user_by_id(user.id).unwrap_or(user);
        let updated = User { password_hash: hash, password_changed_at: now, updated_at: now, ..current_user };
        let entry = caller.entry(now, "auth.password_change", Outcome::Allowed).target("user", &updated.username);
        self.store.update_user(&updated, Some(now), &[entry]).await?;
        self.identity.drop_sessions_of(updated.id);
        self.publish_sessions_ended(updated.id);
        self.identity.put_user(updated);
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
        if user.has_second_factor() {
            return Err(EngineError::Invalid {
                field: "totp",
                message: "a second factor is already set up; an administrator can reset it".into(),
            });
        }
        let secret = crypto::random_bytes::<{ totp::SECRET_BYTES }>();
        let sealed = crypto::seal(&self.config.keys.totp_secrets(), user.username.as_bytes(), &secret);
        let _serial = self.admin_writes.lock().await;
        let now = self.now();
        let updated =
            User { totp_secret: Some(sealed), totp_pending: true, totp_last_step: None, updated_at: now, ..user };
        let entry = caller.entry(now, "auth.totp_setup", Outcome::Allowed).target("user", &updated.username);
        self.store.update_user(&updated, None, &[entry]).await?;
        let setup = TotpSetup {
            secret_base32: totp::base32_encode(&secret),
            uri: totp::otpauth_uri(TOTP_ISSUER, &updated.username, &secret),
        };
        self.identity.put_user(updated);
        Ok(setup)
    }

    /// Confirms a pending second factor with a code from the app; from then on sign-in
    /// needs a code.
    pub async fn confirm_totp(&self, caller: &Caller, code: &str) -> Result<(), EngineError> {
        let user = self.own_account(caller)?;
        if !user.totp_pending {
            return Err(EngineError::Invalid {
                field: "code",
                message: "no second factor is waiting to be confirmed".into(),
            });
        }
        let now = self.now();
        let secret = self.open_totp_secret(&user).ok_or(EngineError::InvalidTotp)?;
        let Some(step) = totp::verify(&secret, code, now.as_millis().div_euclid(1000), None) else {
            let entry = caller.entry(now, "auth.totp_enable", Outcome::Failed).detail("wrong code");
            self.store.append_audit(&entry).await?;
            return Err(EngineError::InvalidTotp);
        };
        let _serial = self.admin_writes.lock().await;
        let updated = User { totp_pending: false, totp_last_step: Some(step), updated_at: now, ..user };
        let entry = caller.entry(now, "auth.totp_enable", Outcome::Allowed).target("user", &updated.username);
        self.store.update_user(&updated, None, &[entry]).await?;
        self.publish_account(&updated);
        self.identity.put_user(updated);
        Ok(())
    }
}

fn locked(state: LoginState, now: Timestamp) -> EngineError {
    let until = state.locked_until.unwrap_or(now);
    EngineError::AccountLocked { retry_after_secs: (until.millis_since(now) + 999) / 1000 }
}
