use fangkong_core::audit::Outcome;
use fangkong_core::auth::account::NewUser;
use fangkong_core::auth::password::PasswordError;
use fangkong_core::auth::{DeviceKind, Role, totp};

use crate::test_support::{FUTIAN, Fixture, LUOHU, PASSWORD};
use crate::{Caller, EngineError, NewDevice, UserChange};

const MINUTE: i64 = 60_000;

async fn fail_login(f: &Fixture, username: &str) -> EngineError {
    f.engine.login(username, "definitely the wrong one", None, Some("198.51.100.4")).await.unwrap_err()
}

#[tokio::test]
async fn sign_in_gives_a_token_that_authenticates_and_is_audited() {
    let f = Fixture::new().await;
    let login = f.engine.login("admin.futian", PASSWORD, None, Some("10.1.1.1")).await.unwrap();
    assert_eq!(login.token.len(), 43);
    let who = f.engine.authenticate(&login.token).unwrap();
    assert_eq!((who.actor.username.as_str(), who.actor.role), ("admin.futian", Role::Administrator));
    assert_eq!(who.actor.scope.code, FUTIAN);
    let record = f.audit().await.pop().unwrap();
    assert_eq!((record.entry.action.as_str(), record.entry.outcome), ("auth.login", Outcome::Allowed));
    assert_eq!(record.entry.ip.as_deref(), Some("10.1.1.1"));
    assert!(matches!(f.engine.authenticate("not-a-token"), Err(EngineError::Unauthenticated)));
}

#[tokio::test]
async fn the_fifth_failure_locks_the_account_for_ten_minutes() {
    let f = Fixture::new().await;
    for attempt in 1..=4 {
        assert!(matches!(fail_login(&f, "admin.futian").await, EngineError::InvalidCredentials), "attempt {attempt}");
    }
    assert!(matches!(fail_login(&f, "admin.futian").await, EngineError::AccountLocked { retry_after_secs: 600 }));
    // Even the right password is refused while locked, and that attempt does not count.
    let locked = f.engine.login("admin.futian", PASSWORD, None, None).await.unwrap_err();
    assert!(matches!(locked, EngineError::AccountLocked { .. }), "{locked:?}");

    let actions: Vec<String> = f.audit().await.iter().rev().take(3).map(|r| r.entry.action.clone()).collect();
    assert_eq!(actions, ["auth.login", "auth.lockout", "auth.login"], "the lockout is its own record");

    f.clock.advance_millis(10 * MINUTE);
    f.engine.login("admin.futian", PASSWORD, None, None).await.expect("unlocked after the period");
    // The success reset the count: four more failures do not lock.
    for _ in 0..4 {
        assert!(matches!(fail_login(&f, "admin.futian").await, EngineError::InvalidCredentials));
    }
}

#[tokio::test]
async fn unknown_usernames_answer_exactly_like_real_ones() {
    let f = Fixture::new().await;
    for _ in 0..4 {
        assert!(matches!(fail_login(&f, "no.such.user").await, EngineError::InvalidCredentials));
    }
    assert!(matches!(fail_login(&f, "no.such.user").await, EngineError::AccountLocked { retry_after_secs: 600 }));
    assert!(matches!(fail_login(&f, "no.such.user").await, EngineError::AccountLocked { .. }));
    let last = f.audit().await.pop().unwrap();
    assert_eq!((last.entry.actor_name.as_str(), last.entry.outcome), ("no.such.user", Outcome::Failed));
}

/// The Argon2 parameters (`m=…,t=…,p=…`) of a PHC string.
fn argon2_params(phc: &str) -> String {
    phc.split('$').find(|part| part.starts_with("m=")).unwrap_or_else(|| panic!("no parameters in {phc}")).to_string()
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_name_cost_the_same_work() {
    let f = Fixture::new().await;
    // The same hash work: the dummy is hashed with the policy's parameters, as accounts are.
    let cost = crate::test_support::config(&f.keys).password_cost;
    let policy = format!("m={},t={},p=1", cost.memory_kib, cost.iterations);
    assert_eq!(argon2_params(&f.engine.identity.dummy_hash), policy);
    let real = f.engine.store.get_user_by_username("admin.futian").await.unwrap().unwrap();
    assert_eq!(argon2_params(&real.password_hash), policy);

    // The same store work after it, attempt by attempt: the same records, written together.
    let written = |records: Vec<fangkong_core::audit::AuditRecord>, before: i64| -> Vec<(i64, String)> {
        records.into_iter().filter(|r| r.seq > before).map(|r| (r.seq - before, r.entry.action)).collect()
    };
    for attempt in 1..=6 {
        let before = f.audit().await.last().unwrap().seq;
        fail_login(&f, "admin.futian").await;
        let real = written(f.audit().await, before);
        let before = f.audit().await.last().unwrap().seq;
        fail_login(&f, "no.such.user").await;
        let unknown = written(f.audit().await, before);
        assert_eq!(real, unknown, "attempt {attempt}: the same records");
        let expected = if attempt == 5 { 2 } else { 1 };
        assert_eq!(real.len(), expected, "attempt {attempt}: {real:?}");
    }
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout_and_the_absolute_lifetime() {
    let f = Fixture::new().await;
    let token = f.engine.login("admin.futian", PASSWORD, None, None).await.unwrap().token;
    f.clock.advance_millis(29 * MINUTE);
    f.engine.authenticate(&token).expect("used within 30 minutes");
    f.clock.advance_millis(30 * MINUTE);
    assert!(matches!(f.engine.authenticate(&token), Err(EngineError::SessionExpired)), "idle for 30 minutes");
    assert!(matches!(f.engine.authenticate(&token), Err(EngineError::Unauthenticated)), "and then gone");

    // Used every 20 minutes, a session still ends 12 hours after sign-in.
    let token = f.engine.login("admin.futian", PASSWORD, None, None).await.unwrap().token;
    for _ in 0..35 {
        f.clock.advance_millis(20 * MINUTE);
        f.engine.authenticate(&token).expect("active");
    }
    f.clock.advance_millis(20 * MINUTE); // 12 h 0 min
    assert!(matches!(f.engine.authenticate(&token), Err(EngineError::SessionExpired)));
}

#[tokio::test]
async fn sessions_survive_a_restart_with_their_idle_clock() {
    let f = Fixture::new().await;
    let token = f.engine.login("admin.futian", PASSWORD, None, None).await.unwrap().token;
    f.clock.advance_millis(20 * MINUTE);
    f.engine.authenticate(&token).unwrap();
    f.engine.maintain().await.unwrap();
    let restarted = f.restart().await;
    f.clock.advance_millis(20 * MINUTE);
    restarted.authenticate(&token).expect("40 minutes after sign-in but 20 after last use");
    restarted.shutdown().await;
}

#[tokio::test]
async fn logged_out_and_administratively_ended_sessions_are_refused() {
    let f = Fixture::new().await;
    f.add_user("disp.01", Role::Dispatcher, FUTIAN).await;
    let admin = f.caller("admin.futian").await;

    let token = f.engine.login("disp.01", PASSWORD, None, None).await.unwrap().token;
    let caller = Caller::new(fangkong_core::auth::Actor::User(f.engine.authenticate(&token).unwrap().actor));
    f.engine.logout(&caller, &token).await.unwrap();
    assert!(matches!(f.engine.authenticate(&token), Err(EngineError::Unauthenticated)));

    let token = f.engine.login("disp.01", PASSWORD, None, None).await.unwrap().token;
    f.engine.lock_user(&admin, "disp.01").await.unwrap();
    assert!(matches!(f.engine.authenticate(&token), Err(EngineError::Unauthenticated)), "a lock ends sessions");
    assert!(matches!(f.engine.login("disp.01", PASSWORD, None, None).await, Err(EngineError::AccountLocked { .. })));
    f.engine.unlock_user(&admin, "disp.01").await.unwrap();

    let token = f.engine.login("disp.01", PASSWORD, None, None).await.unwrap().token;
    f.engine.update_user(&admin, "disp.01", UserChange { disabled: Some(true), ..Default::default() }).await.unwrap();
    assert!(matches!(f.engine.authenticate(&token), Err(EngineError::Unauthenticated)), "disabling ends sessions");
    assert!(matches!(f.engine.login("disp.01", PASSWORD, None, None).await, Err(EngineError::InvalidCredentials)));

    // Nor does a restart bring a revoked session back.
    let restarted = f.restart().await;
    assert!(restarted.authenticate(&token).is_err());
    restarted.shutdown().await;
}

#[tokio::test]
async fn the_password_policy_applies_to_every_new_password() {
    let f = Fixture::new().await;
    let admin = f.caller("admin.futian").await;
    let new = |username: &str| NewUser {
        username: username.into(),
        display_name: "李娜".into(),
        role: Role::HousingCoordinator,
        jurisdiction: "440304001001".into(),
    };
    for (password, expected) in [
        ("short pass", PasswordError::TooShort),
        ("password1234", PasswordError::Common),
        ("Woaini1314520", PasswordError::Common),
        ("the li.na password", PasswordError::ContainsUsername),
    ] {
        let result = f.engine.create_user(&admin, new("li.na"), password).await;
        assert!(matches!(result, Err(EngineError::Password(e)) if e == expected), "{password}: {result:?}");
    }
    f.engine.create_user(&admin, new("li.na"), PASSWORD).await.unwrap();
    let result = f.engine.reset_password(&admin, "li.na", "123456789012").await;
    assert!(matches!(result, Err(EngineError::Password(PasswordError::Common))));
    let coordinator = f.caller("li.na").await;
    let result = f.engine.change_own_password(&coordinator, PASSWORD, "qwertyuiop123").await;
    assert!(matches!(result, Err(EngineError::Password(PasswordError::Common))));
    f.engine.change_own_password(&coordinator, PASSWORD, "a much better passphrase").await.unwrap();
    f.engine.login("li.na", "a much better passphrase", None, None).await.unwrap();
}

#[tokio::test]
async fn a_second_factor_is_required_once_confirmed_and_codes_are_single_use() {
    let f = Fixture::new().await;
    let admin = f.caller("admin.futian").await;
    let setup = f.engine.begin_totp(&admin).await.unwrap();
    let secret = totp::base32_decode(&setup.secret_base32).unwrap();
    assert!(setup.uri.starts_with("otpauth://totp/Fangkong:admin.futian?secret="));
    let now_secs = |f: &Fixture| f.engine.now().as_millis() / 1000;

    // Pending until confirmed: sign-in still works without a code.
    f.engine.login("admin.futian", PASSWORD, None, None).await.unwrap();
    assert!(matches!(f.engine.confirm_totp(&admin, "000000").await, Err(EngineError::InvalidTotp)));
    f.engine.confirm_totp(&admin, &totp::code_at(&secret, now_secs(&f))).await.unwrap();

    assert!(matches!(f.engine.login("admin.futian", PASSWORD, None, None).await, Err(EngineError::TotpRequired)));
    f.clock.advance_millis(30_000);
    let code = totp::code_at(&secret, now_secs(&f));
    f.engine.login("admin.futian", PASSWORD, Some(&code), None).await.expect("right code accepted");
    let replay = f.engine.login("admin.futian", PASSWORD, Some(&code), None).await;
    assert!(matches!(replay, Err(EngineError::InvalidCredentials)), "the same code twice is refused: {replay:?}");
    let wrong = f.engine.login("admin.futian", PASSWORD, Some("123456"), None).await;
    assert!(matches!(wrong, Err(EngineError::InvalidCredentials)));

    // The secret is stored encrypted, never in the clear.
    let stored = f.engine.store.get_user_by_username("admin.futian").await.unwrap().unwrap();
    let sealed = stored.totp_secret.unwrap();
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_slice()));

    // An administrator of the user's district can remove it (lost phone).
    f.add_user("root", Role::Administrator, "440300").await;
    let root = f.caller("root").await;
    f.engine
        .update_user(&root, "admin.futian", UserChange { clear_second_factor: true, ..Default::default() })
        .await
        .unwrap();
    f.engine.login("admin.futian", PASSWORD, None, None).await.unwrap();
}

#[tokio::test]
async fn administrators_act_only_inside_their_jurisdiction() {
    let f = Fixture::new().await;
    f.add_user("disp.futian", Role::Dispatcher, FUTIAN).await;
    f.add_user("disp.luohu", Role::Dispatcher, LUOHU).await;
    let futian = f.caller("admin.futian").await;

    let listed: Vec<String> = f.engine.users(&futian).await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(listed, ["admin.futian", "disp.futian"]);
    f.engine.lock_user(&futian, "disp.futian").await.unwrap();
    let outside = f.engine.lock_user(&futian, "disp.luohu").await;
    assert!(matches!(outside, Err(EngineError::Denied(_))), "{outside:?}");
    let moved = UserChange { jurisdiction: Some(LUOHU.into()), ..Default::default() };
    assert!(matches!(f.engine.update_user(&futian, "disp.futian", moved).await, Err(EngineError::Denied(_))));
    let new = NewUser {
        username: "x.luohu".into(),
        display_name: "X".into(),
        role: Role::Commander,
        jurisdiction: LUOHU.into(),
    };
    assert!(matches!(f.engine.create_user(&futian, new, PASSWORD).await, Err(EngineError::Denied(_))));

    // Each refusal left a denied record naming the admin and the target.
    let denied: Vec<_> = f.audit().await.into_iter().filter(|r| r.entry.outcome == Outcome::Denied).collect();
    assert_eq!(denied.len(), 3);
    assert!(denied.iter().all(|r| r.entry.actor_name == "admin.futian"));
    assert_eq!(denied[0].entry.target_id.as_deref(), Some("disp.luohu"));
}

#[tokio::test]
async fn reading_accounts_needs_a_purpose_and_every_read_is_audited() {
    let f = Fixture::new().await;
    let admin = f.caller("admin.futian").await;
    f.engine.user(&admin, "admin.futian").await.unwrap();
    let read = f.audit().await.pop().unwrap();
    assert_eq!((read.entry.action.as_str(), read.entry.purpose.as_deref()), ("user.read", Some("test")));
    assert_eq!(read.entry.target_id.as_deref(), Some("admin.futian"));

    let without_purpose = Caller { purpose: None, ..admin };
    assert!(matches!(f.engine.users(&without_purpose).await, Err(EngineError::PurposeRequired)));
    let refused = f.audit().await.pop().unwrap();
    assert_eq!((refused.entry.action.as_str(), refused.entry.outcome), ("user.list", Outcome::Denied));
}

#[tokio::test]
async fn devices_authenticate_with_their_secret_until_revoked_and_act_only_for_themselves() {
    let f = Fixture::new().await;
    let admin = f.caller("admin.futian").await;
    // A tracker names its unit, which must be one of the administrator's jurisdiction.
    let unit = fangkong_core::forces::Unit {
        code: "FT-01".into(),
        call_sign: "福田01".into(),
        station: "PS440304-01".into(),
        category: fangkong_core::forces::ForceCategory::Police,
        mode: fangkong_core::forces::PatrolMode::Vehicle,
        equipment: Vec::new(),
        beat: None,
        capabilities: Vec::new(),
    };
    f.engine.save_unit(&Caller::system("test"), unit).await.unwrap();
    let tracker = NewDevice {
        unique_id: "862118020000001".into(),
        kind: DeviceKind::Tracker,
        unit: Some("FT-01".into()),
        jurisdiction: FUTIAN.into(),
        name: None,
        location: None,
    };
    let (device, secret) = f.engine.add_device(&admin, tracker.clone()).await.unwrap();
    let (_, other_secret) = f
        .engine
        .add_device(&admin, NewDevice { unique_id: "862118020000002".into(), ..tracker.clone() })
        .await
        .unwrap();
    assert_ne!(secret, other_secret);

    let actor = f.engine.authenticate_device(&device.unique_id, &secret, None).await.unwrap();
    assert!(matches!(
        f.engine.authenticate_device(&device.unique_id, &other_secret, None).await,
        Err(EngineError::Unauthenticated)
    ));
    assert!(matches!(f.engine.authenticate_device("nope", &secret, None).await, Err(EngineError::Unauthenticated)));

    let caller = Caller::new(fangkong_core::auth::Actor::Device(actor));
    f.clock.advance_millis(1_000);
    let seen = f.engine.device_heartbeat(&caller, "862118020000001").await.unwrap();
    assert_eq!(seen.last_seen_at, Some(f.engine.now()));
    let theirs = f.engine.device_heartbeat(&caller, "862118020000002").await;
    assert!(matches!(theirs, Err(EngineError::Denied(fangkong_core::auth::Denial::NotOwnDevice))));
    assert_eq!(f.audit().await.pop().unwrap().entry.outcome, Outcome::Denied);

    f.engine.revoke_device(&admin, "862118020000001").await.unwrap();
    assert!(matches!(
        f.engine.authenticate_device(&device.unique_id, &secret, None).await,
        Err(EngineError::DeviceRevoked)
    ));
    // The secret itself is not stored.
    let stored = f.engine.store.list_devices().await.unwrap();
    assert!(stored.iter().all(|d| d.secret_hash != [0; 32]));
    let restarted = f.restart().await;
    assert!(matches!(
        restarted.authenticate_device(&device.unique_id, &secret, None).await,
        Err(EngineError::DeviceRevoked)
    ));
    restarted.shutdown().await;
}

#[tokio::test]
async fn only_auditors_read_the_trail_and_reading_it_is_recorded() {
    let f = Fixture::new().await;
    f.add_user("auditor", Role::Auditor, "440300").await;
    let admin = f.caller("admin.futian").await;
    let auditor = f.caller("auditor").await;
    let query = fangkong_store::AuditQuery { limit: 5, ..Default::default() };
    assert!(matches!(f.engine.audit_records(&admin, &query).await, Err(EngineError::Denied(_))));
    let records = f.engine.audit_records(&auditor, &query).await.unwrap();
    assert_eq!(records.len(), 5);
    let newest = &records[0].entry;
    assert_eq!(
        (newest.action.as_str(), newest.actor_name.as_str(), newest.outcome),
        ("audit.read", "admin.futian", Outcome::Denied)
    );
    let last = f.audit().await.pop().unwrap();
    assert_eq!((last.entry.action.as_str(), last.entry.actor_name.as_str()), ("audit.read", "auditor"));
}

#[tokio::test]
async fn verification_passes_untouched_and_names_the_first_altered_record() {
    let f = Fixture::new().await;
    let system = Caller::system("test");
    let clean = f.engine.verify_audit(&system).await.unwrap();
    assert_eq!(clean.broken, None);
    assert!(clean.checked >= 3);

    // Tamper behind the engine's back, as someone with the database file would.
    let path = f.dir.path().join("fk.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET actor_name = 'someone' WHERE seq = 2;")
        .unwrap();
    drop(conn);
    let tampered = f.engine.verify_audit(&system).await.unwrap();
    assert_eq!(tampered.broken.as_ref().and_then(|b| b.record()), Some(2), "{:?}", tampered.broken);
}

#[tokio::test]
async fn retention_purges_old_records_behind_a_seal_that_still_verifies() {
    let f = Fixture::new().await;
    let before = f.audit().await.len() as i64;
    f.clock.advance_millis(731 * 24 * 60 * MINUTE);
    f.add_user("late", Role::Analyst, "440300").await; // a record inside the retention period
    f.engine.maintain().await.unwrap();
    let remaining = f.audit().await;
    assert_eq!(remaining.first().unwrap().seq, before + 1, "everything older than two years is gone");
    let purge = remaining.last().unwrap();
    assert_eq!(purge.entry.action, "audit.purge");
    let verification = f.engine.verify_audit(&Caller::system("test")).await.unwrap();
    assert_eq!((verification.broken, verification.sealed_through), (None, Some(before)));
}

#[tokio::test]
async fn a_lock_made_by_another_process_takes_effect_at_the_next_upkeep() {
    let f = Fixture::new().await;
    f.add_user("disp.01", Role::Dispatcher, FUTIAN).await;
    let token = f.engine.login("disp.01", PASSWORD, None, None).await.unwrap().token;
    // A second engine on the same database stands for `fangkong user lock` at the terminal.
    let cli = crate::test_support::start(&f.url, &f.clock, crate::test_support::config(&f.keys)).await.unwrap();
    cli.lock_user(&Caller::system("cli"), "disp.01").await.unwrap();
    cli.shutdown().await;

    f.engine.authenticate(&token).expect("not seen yet");
    f.engine.maintain().await.unwrap();
    assert!(matches!(f.engine.authenticate(&token), Err(EngineError::Unauthenticated)));
    assert!(matches!(f.engine.login("disp.01", PASSWORD, None, None).await, Err(EngineError::AccountLocked { .. })));
}

#[tokio::test]
async fn account_and_device_changes_are_announced_without_personal_data() {
    use fangkong_core::event::Event;
    let f = Fixture::new().await;
    let admin = f.caller("admin.futian").await;
    let mut events = f.engine.bus().subscribe();
    f.add_user("disp.01", Role::Dispatcher, FUTIAN).await;
    let token = f.engine.login("disp.01", PASSWORD, None, None).await.unwrap().token;
    f.engine.lock_user(&admin, "disp.01").await.unwrap();
    let tracker = NewDevice {
        unique_id: "t-1".into(),
        kind: DeviceKind::Tracker,
        unit: None,
        jurisdiction: FUTIAN.into(),
        name: None,
        location: None,
    };
    let (_, secret) = f.engine.add_device(&admin, tracker).await.unwrap();
    let device = Caller::new(fangkong_core::auth::Actor::Device(
        f.engine.authenticate_device("t-1", &secret, None).await.unwrap(),
    ));
    f.engine.device_heartbeat(&device, "t-1").await.unwrap();
    drop(token);

    let mut names = Vec::new();
    while let Ok(envelope) = events.try_recv() {
        if let Event::AccountChanged(account) = &envelope.event {
            assert_eq!(account.username, "disp.01");
        }
        names.push(envelope.event.name());
    }
    assert_eq!(
        names,
        [
            "account.changed",
            "session.signed_in",
            "session.ended_all",
            "account.changed",
            "device.changed",
            "device.seen"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_guesses_cannot_unlock_the_account() {
    let f = Fixture::new().await;
    f.add_user("target", Role::Dispatcher, FUTIAN).await;
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let engine = f.engine.clone();
            tokio::spawn(async move { engine.login("target", "not the password at all", None, None).await })
        })
        .collect();
    let mut locked_answers = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Err(EngineError::AccountLocked { .. }) => locked_answers += 1,
            Err(EngineError::InvalidCredentials) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(locked_answers >= 7, "once locked, every later guess is refused as locked ({locked_answers})");
    let stored = f.engine.store.get_user_by_username("target").await.unwrap().unwrap();
    assert!(stored.login.is_locked(f.engine.now()), "still locked after the storm: {:?}", stored.login);
    assert!(matches!(f.engine.login("target", PASSWORD, None, None).await, Err(EngineError::AccountLocked { .. })));
}

#[tokio::test]
async fn a_lock_from_another_process_is_not_undone_by_a_failed_sign_in() {
    let f = Fixture::new().await;
    f.add_user("disp.02", Role::Dispatcher, FUTIAN).await;
    let cli = crate::test_support::start(&f.url, &f.clock, crate::test_support::config(&f.keys)).await.unwrap();
    cli.lock_user(&Caller::system("cli"), "disp.02").await.unwrap();
    cli.reset_password(&Caller::system("cli"), "disp.02", "the reset passphrase").await.unwrap();
    cli.lock_user(&Caller::system("cli"), "disp.02").await.unwrap();
    cli.shutdown().await;

    // This engine has not refreshed yet: its memory still shows the account open.
    let _ = f.engine.login("disp.02", "a wrong guess here", None, None).await;
    let stored = f.engine.store.get_user_by_username("disp.02").await.unwrap().unwrap();
    assert!(stored.login.is_locked(f.engine.now()), "the lock stands: {:?}", stored.login);
    assert!(crate::crypto::verify_password("the reset passphrase", &stored.password_hash), "the reset stands");
    assert!(matches!(f.engine.login("disp.02", PASSWORD, None, None).await, Err(EngineError::AccountLocked { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_code_opens_one_session_even_when_sent_twice_at_once() {
    let f = Fixture::new().await;
    let admin = f.caller("admin.futian").await;
    let setup = f.engine.begin_totp(&admin).await.unwrap();
    let secret = totp::base32_decode(&setup.secret_base32).unwrap();
    let now = f.engine.now().as_millis() / 1000;
    f.engine.confirm_totp(&admin, &totp::code_at(&secret, now)).await.unwrap();
    f.clock.advance_millis(30_000);
    let code = totp::code_at(&secret, now + 30);
    let both: Vec<_> = (0..2)
        .map(|_| {
            let (engine, code) = (f.engine.clone(), code.clone());
            tokio::spawn(async move { engine.login("admin.futian", PASSWORD, Some(&code), None).await })
        })
        .collect();
    let mut successes = 0;
    for attempt in both {
        if attempt.await.unwrap().is_ok() {
            successes += 1;
        }
    }
    assert_eq!(successes, 1);
}

#[tokio::test]
async fn a_stolen_session_cannot_guess_the_password_without_limit() {
    let f = Fixture::new().await;
    f.add_user("victim", Role::Analyst, FUTIAN).await;
    let session = f.caller("victim").await;
    for _ in 0..4 {
        let wrong = f.engine.change_own_password(&session, "guess guess guess", "a new long passphrase").await;
        assert!(matches!(wrong, Err(EngineError::InvalidCredentials)), "{wrong:?}");
    }
    let fifth = f.engine.change_own_password(&session, "guess guess guess", "a new long passphrase").await;
    assert!(matches!(fifth, Err(EngineError::AccountLocked { .. })), "{fifth:?}");
}

#[tokio::test]
async fn administrators_cannot_make_or_manage_auditors() {
    let f = Fixture::new().await;
    f.add_user("auditor.1", Role::Auditor, "440300").await;
    f.add_user("root", Role::Administrator, "440300").await;
    f.add_user("disp.9", Role::Dispatcher, FUTIAN).await;
    let root = f.caller("root").await;
    let denied = |r: Result<_, EngineError>| {
        matches!(r, Err(EngineError::Denied(fangkong_core::auth::Denial::SeparationOfDuties)))
    };
    let new_auditor = NewUser {
        username: "aud.2".into(),
        display_name: "审计".into(),
        role: Role::Auditor,
        jurisdiction: "440300".into(),
    };
    assert!(denied(f.engine.create_user(&root, new_auditor.clone(), PASSWORD).await.map(|_| ())));
    assert!(denied(f.engine.lock_user(&root, "auditor.1").await.map(|_| ())));
    assert!(denied(f.engine.reset_password(&root, "auditor.1", "a takeover passphrase").await));
    let promote = UserChange { role: Some(Role::Auditor), ..Default::default() };
    assert!(denied(f.engine.update_user(&root, "disp.9", promote.clone()).await.map(|_| ())));
    assert!(denied(f.engine.update_user(&root, "root", promote.clone()).await.map(|_| ())), "not even themselves");
    let records = f.audit().await;
    assert_eq!(records.iter().filter(|r| r.entry.outcome == Outcome::Denied).count(), 5, "every refusal recorded");
    // The system operator (the CLI) manages auditors.
    f.engine.create_user(&Caller::system("cli"), new_auditor, PASSWORD).await.unwrap();
}

#[tokio::test]
async fn an_empty_change_still_leaves_a_record() {
    let f = Fixture::new().await;
    f.add_user("disp.3", Role::Dispatcher, FUTIAN).await;
    let admin = f.caller("admin.futian").await;
    f.engine.update_user(&admin, "disp.3", UserChange::default()).await.unwrap();
    let last = f.audit().await.pop().unwrap();
    assert_eq!((last.entry.action.as_str(), last.entry.detail.as_deref()), ("user.update", Some("no change")));
}

#[tokio::test]
async fn a_head_moved_back_over_deleted_records_is_found() {
    let f = Fixture::new().await;
    let records = f.audit().await;
    let (last, before) = (&records[records.len() - 1], &records[records.len() - 2]);
    let path = f.dir.path().join("fk.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Delete the newest record and point the head at the one before, as someone with the
    // database but not the key file would.
    conn.execute_batch("DROP TRIGGER audit_log_no_unsealed_delete;").unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq = ?1", [last.seq]).unwrap();
    conn.execute("UPDATE audit_head SET seq = ?1, hash = ?2", rusqlite::params![before.seq, &before.hash[..]]).unwrap();
    drop(conn);
    let verification = f.engine.verify_audit(&Caller::system("test")).await.unwrap();
    assert_eq!(verification.broken, Some(fangkong_core::audit::Broken::HeadAltered { seq: before.seq }));
}

#[tokio::test]
async fn names_no_account_could_have_are_refused_without_being_tracked() {
    let f = Fixture::new().await;
    let long = "x".repeat(10_000);
    for _ in 0..6 {
        assert!(matches!(
            f.engine.login(&long, "whatever password", None, None).await,
            Err(EngineError::InvalidCredentials)
        ));
    }
    let last = f.audit().await.pop().unwrap();
    assert_eq!(last.entry.actor_name.len(), 64, "the audit keeps at most 64 characters of a tried name");
}
