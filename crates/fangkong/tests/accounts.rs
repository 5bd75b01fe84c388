//! Account, device and audit administration at the terminal, on SQLite and PostgreSQL.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use fangkong_store::testing::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_fangkong");

/// A database with a key file and the demo's city tree (from `fangkong demo`'s seeding is
/// not reachable here, so the tree is made by adding the city through a first run).
struct Setup {
    db: TestDatabase,
    key: String,
    _dir: tempfile::TempDir,
}

fn run(setup: &Setup, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--db", &setup.db.url, "--key-file", &setup.key])
        .env_remove("FANGKONG_DB")
        .env_remove("FANGKONG_CONFIG")
        .env("USER", "ops")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command refused by argument parsing exits without reading stdin: a broken pipe
    // here is that, not a failure of the test.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(error) => panic!("writing stdin: {error}"),
    }
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[track_caller]
fn ok(output: Output) -> String {
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    stdout
}

#[track_caller]
fn fails(output: Output, fragment: &str) -> String {
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(fragment), "{stderr:?} should mention {fragment:?}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Seeds the city node the way the server would, through the engine.
fn setup(db: TestDatabase) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("fangkong.key");
    let output = Command::new(BIN).args(["keygen", key.to_str().unwrap()]).output().unwrap();
    assert!(output.status.success());
    let key = key.to_str().unwrap().to_string();
    let text = std::fs::read_to_string(&key).unwrap();
    let keys = fangkong_engine::keys::KeyRing::parse(&text).unwrap();
    runtime().block_on(async {
        let engine = fangkong_engine::Engine::open(&db.url, fangkong_engine::EngineConfig::new(keys)).await.unwrap();
        let city = fangkong_core::jurisdiction::Jurisdiction {
            code: "440300".into(),
            kind: fangkong_core::jurisdiction::JurisdictionKind::City,
            parent: None,
            name_zh: "深圳市".into(),
            name_en: Some("Shenzhen".into()),
        };
        engine.import_jurisdictions(&fangkong_engine::Caller::system("test"), vec![city]).await.unwrap();
        engine.shutdown().await;
    });
    Setup { db, key, _dir: dir }
}

fn databases() -> Vec<TestDatabase> {
    runtime().block_on(TestDatabase::all())
}

#[test]
fn users_are_added_listed_locked_and_reset_with_passwords_from_stdin() {
    for db in databases() {
        let s = setup(db);
        let add = |username: &str, password: &str| {
            run(
                &s,
                &["user", "add", "--username", username, "--role", "dispatcher", "--jurisdiction", "440300"],
                &format!("{password}\n"),
            )
        };
        assert!(
            ok(add("zhang.wei", "a long and decent passphrase")).contains("created zhang.wei (dispatcher in 440300)")
        );
        fails(add("li.na", "password1234"), "one of the most common passwords");
        fails(add("wang.fang", "too short"), "at least 12 characters");
        fails(add("zhang.wei", "another decent passphrase"), "already exists");
        fails(
            run(&s, &["user", "add", "--username", "x.y.z", "--role", "king", "--jurisdiction", "440300"], "x\n"),
            "--role",
        );
        fails(add("chen.jie", ""), "no password on stdin");

        let listed = ok(run(&s, &["user", "list"], ""));
        assert!(listed.contains("zhang.wei") && listed.contains("active"), "{listed}");
        assert!(ok(run(&s, &["user", "lock", "zhang.wei"], "")).contains("locked zhang.wei"));
        assert!(ok(run(&s, &["user", "list"], "")).contains("locked"));
        ok(run(&s, &["user", "unlock", "zhang.wei"], ""));
        ok(run(&s, &["user", "reset-password", "zhang.wei"], "a fresh new passphrase\n"));
        fails(run(&s, &["user", "lock", "nobody"], ""), "user nobody does not exist");

        // Every change is in the trail, under the operating-system user's name.
        let verified = ok(run(&s, &["audit", "verify"], ""));
        assert!(verified.starts_with("audit trail intact"), "{verified}");
    }
}

#[test]
fn devices_get_a_credential_once_and_can_be_revoked() {
    for db in databases() {
        let s = setup(db);
        let added = ok(run(
            &s,
            &["device", "add", "--kind", "tracker", "--unique-id", "862118020000001", "--unit", "FT-01"],
            "",
        ));
        let secret = added.lines().find_map(|l| l.strip_prefix("secret:")).unwrap().trim().to_string();
        assert_eq!(secret.len(), 43);
        fails(run(&s, &["device", "add", "--kind", "tracker", "--unique-id", "862118020000001"], ""), "already exists");
        fails(run(&s, &["device", "add", "--kind", "toaster", "--unique-id", "x1"], ""), "--kind");
        // A fixed device's place: malformed, off the globe, or where the city has no ground.
        let site = |location: &str| {
            run(
                &s,
                &[
                    "device",
                    "add",
                    "--kind",
                    "alarm-point",
                    "--unique-id",
                    "AP-1",
                    "--name",
                    "加油站报警点",
                    "--location",
                    location,
                ],
                "",
            )
        };
        fails(site("22.54"), "--location: give LAT,LON");
        fails(site("22.54,east"), "longitude \"east\"");
        fails(site("122.54,114.05"), "--location");
        fails(site("22.54,114.05"), "outside the city");
        let listed = ok(run(&s, &["device", "list"], ""));
        assert!(
            listed.contains("862118020000001") && listed.contains("active") && !listed.contains(&secret),
            "{listed}"
        );
        ok(run(&s, &["device", "revoke", "862118020000001"], ""));
        assert!(ok(run(&s, &["device", "list"], "")).contains("revoked"));
    }
}

/// Tampering one row behind the application, as someone with database access would, after
/// dropping the protective triggers.
fn tamper(s: &Setup, sql: &str) {
    let unprotect = match s.db.backend() {
        fangkong_store::Backend::Sqlite => {
            "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_unsealed_delete;"
        }
        fangkong_store::Backend::Postgres => "DROP TRIGGER audit_log_append_only ON audit_log;",
    };
    runtime().block_on(s.db.execute_raw(&format!("{unprotect} {sql}")));
}

/// Four audited changes to tamper with.
fn add_four_users(s: &Setup) {
    for n in 0..4 {
        let username = format!("user.{n}");
        let args = ["user", "add", "--username", &username, "--role", "analyst", "--jurisdiction", "440300"];
        ok(run(s, &args, "a decent long passphrase\n"));
    }
}

#[test]
fn audit_verify_names_the_first_altered_deleted_or_reordered_record() {
    let cases = [
        ("altered", "UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 3", "record 3 was altered"),
        ("deleted", "DELETE FROM audit_log WHERE seq = 3", "record 3 is missing"),
        (
            "reordered",
            "UPDATE audit_log SET seq = -1 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; \
             UPDATE audit_log SET seq = 4 WHERE seq = -1",
            "record 3 does not follow record 2",
        ),
        ("truncated", "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)", "removed from the end"),
    ];
    for db in databases() {
        let backend = db.backend();
        let s = setup(db);
        add_four_users(&s);
        let intact = ok(run(&s, &["audit", "verify"], ""));
        let head = intact.lines().find_map(|l| l.strip_prefix("head: ")).unwrap().to_string();
        ok(run(&s, &["audit", "verify", "--expect-head", &head], ""));
        drop(s);

        for (name, sql, message) in cases {
            let db = runtime().block_on(async {
                match backend {
                    fangkong_store::Backend::Sqlite => Some(TestDatabase::sqlite()),
                    fangkong_store::Backend::Postgres => TestDatabase::postgres().await,
                }
            });
            let s = setup(db.unwrap());
            add_four_users(&s);
            tamper(&s, sql);
            let stderr = fails(run(&s, &["audit", "verify"], ""), "audit trail broken");
            assert!(stderr.contains(message), "{backend:?} {name}: {stderr}");
        }
    }
}

/// A valid GB 11643 number from its first 17 digits.
fn id_number(first17: &str) -> String {
    format!("{first17}{}", fangkong_core::documents::check_character(first17.as_bytes()))
}

#[test]
fn registry_files_import_all_or_nothing_and_no_number_reaches_the_file_or_the_log() {
    let s = setup(TestDatabase::sqlite());
    let keys = fangkong_engine::keys::KeyRing::parse(&std::fs::read_to_string(&s.key).unwrap()).unwrap();
    runtime().block_on(async {
        use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind::*};
        let engine = fangkong_engine::Engine::open(&s.db.url, fangkong_engine::EngineConfig::new(keys)).await.unwrap();
        let node = |code: &str, kind, parent: &str| Jurisdiction {
            code: code.into(),
            kind,
            parent: Some(parent.into()),
            name_zh: format!("辖区{code}"),
            name_en: None,
        };
        let tree = vec![
            node("440304", District, "440300"),
            node("440304001", Subdistrict, "440304"),
            node("440304001001", Community, "440304001"),
            node("440304001001G01", Grid, "440304001001"),
        ];
        engine.import_jurisdictions(&fangkong_engine::Caller::system("test"), tree).await.unwrap();
        engine.shutdown().await;
    });
    let dir = tempfile::tempdir().unwrap();
    let properties = dir.path().join("properties.csv");
    std::fs::write(
        &properties,
        "building,address,grid,lon,lat,kind,floors,unit,area_m2\n\
         B1,园岭新村1栋,440304001001G01,114.05,22.55,urban_village,7,B1U1,25\n",
    )
    .unwrap();
    let logged = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .args(["--db", &s.db.url, "--key-file", &s.key])
            .env_remove("FANGKONG_DB")
            .env_remove("FANGKONG_CONFIG")
            .env("FANGKONG_LOG", "trace")
            .env("USER", "ops")
            .output()
            .unwrap()
    };
    let mut output = String::new();
    let mut collect = |out: &Output| {
        let (stdout, stderr) = text(out);
        output.push_str(&stdout);
        output.push_str(&stderr);
    };
    let first = logged(&["import", "properties", properties.to_str().unwrap()]);
    collect(&first);
    assert!(first.status.success(), "{output}");

    let numbers: Vec<String> = (1..=20).map(|n| id_number(&format!("430102199003{n:02}{n:03}"))).collect();
    let mut rows = String::from("code,name,id_number,phone,unit,grid\n");
    for (i, number) in numbers.iter().enumerate() {
        rows.push_str(&format!("R{i},张三,{number},1380000{i:04},B1U1,440304001001G01\n"));
    }
    // First with a bad row in the middle: refused, the row named, nothing stored.
    let mut bad = rows.clone();
    let good = id_number("43010219900307001");
    let wrong = format!("{}{}", &good[..17], if good.ends_with('1') { '2' } else { '1' });
    bad.push_str(&format!("R99,李四,{wrong},13800009999,B1U1,440304001001G01\n"));
    bad.push_str(&format!("R98,王五,{},13800009998,B1U1,440304001001G01\n", id_number("43010219900307098")));
    let residents = dir.path().join("residents.csv");
    std::fs::write(&residents, &bad).unwrap();
    let refused = logged(&["import", "residents", residents.to_str().unwrap()]);
    collect(&refused);
    assert_eq!(refused.status.code(), Some(1), "{output}");
    let (_, stderr) = text(&refused);
    assert!(stderr.contains("row 22, id_number: check character"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let count = |s: &Setup| {
        let conn = rusqlite::Connection::open(s.db.url.trim_start_matches("sqlite://")).unwrap();
        conn.query_row("SELECT count(*) FROM registry_residents", [], |r| r.get::<_, i64>(0)).unwrap()
    };
    assert_eq!(count(&s), 0, "the refused file left nothing");

    std::fs::write(&residents, &rows).unwrap();
    let imported = logged(&["import", "residents", residents.to_str().unwrap()]);
    collect(&imported);
    assert!(imported.status.success(), "{output}");
    assert!(text(&imported).0.contains("20 rows imported"), "{output}");
    assert_eq!(count(&s), 20);

    let path = s.db.url.trim_start_matches("sqlite://").to_string();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        bytes.extend(std::fs::read(format!("{path}{suffix}")).unwrap_or_default());
    }
    assert!(bytes.windows("张三".len()).any(|w| w == "张三".as_bytes()), "the scan reads the stored rows");
    assert!(
        output.contains("TRACE") || output.contains("DEBUG") || output.contains("INFO"),
        "logging was on: {output}"
    );
    for number in &numbers {
        assert!(!bytes.windows(number.len()).any(|w| w == number.as_bytes()), "{number} in the database file");
        assert!(!output.contains(number.as_str()), "{number} in the log");
    }
    assert!(!output.contains("13800000001"), "a phone in the log");
}
