//! `fangkong demo`: the server on a SQLite file with the demo city and one account per role.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use fangkong_core::auth::Role;
use fangkong_core::auth::account::NewUser;
use fangkong_engine::keys::KeyRing;
use fangkong_engine::{Caller, Engine, NodeWrite};

use crate::config::{self, Config, Policies};
use crate::{init_logging, print_line, serve};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for the demo database and key; default: a fresh temporary directory,
    /// removed on exit.
    #[arg(long, value_name = "DIR", env = "FANGKONG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", env = "FANGKONG_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: String,
    /// Password of the `admin` account (read from FANGKONG_ADMIN_PASSWORD if set); default:
    /// generated and printed.
    #[arg(long, value_name = "PASSWORD", env = "FANGKONG_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    #[command(flatten)]
    trackers: config::TrackerArgs,
    /// A MapLibre style URL for the console's base map (a deployment's own tile server).
    #[arg(long, value_name = "URL", env = "FANGKONG_MAP_STYLE_URL")]
    map_style_url: Option<String>,
    /// The bearer token for /metrics; default: generated and printed.
    #[arg(long, value_name = "TOKEN", env = "FANGKONG_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// How many times faster than real time the live city runs (calls, patrols, responses);
    /// 0 stops the simulation and runs on the wall clock.
    #[arg(long, value_name = "FACTOR", default_value_t = 60.0)]
    speed: f64,
    /// Scale of the housing registry the demo imports on a new database (1.0: the city's
    /// 20 M residents; 0 imports none).
    #[arg(long, value_name = "SCALE", default_value_t = 0.01)]
    registry_scale: f64,
    /// Share of the plan's 50,000-strong force that patrols the live city (0.05 ≈ 900
    /// teams); calls scale with it.
    #[arg(long, value_name = "SHARE", default_value_t = 0.05)]
    force_scale: f64,
    /// 110/119/122 calls a day over the whole city [default: 15,000 × the force's share]
    #[arg(long, value_name = "N")]
    calls_per_day: Option<f64>,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, value_name = "FILTER", env = "FANGKONG_LOG", default_value = "info")]
    log: String,
}

/// The demo's accounts: username, role, the node they are bound to.
const ACCOUNTS: &[(&str, Role, &str)] = &[
    ("admin", Role::Administrator, "440300"),
    ("commander", Role::Commander, "440300"),
    ("dispatcher", Role::Dispatcher, "440300"),
    ("patrol", Role::PatrolMember, "440304"),
    ("officer", Role::CommunityOfficer, "440304001020"),
    ("coordinator", Role::HousingCoordinator, "440304001020"),
    ("hotel", Role::HotelClerk, "440304001"),
    ("checkpoint", Role::CheckpointOperator, "440306"),
    ("informant", Role::Informant, "440304001020"),
    ("analyst", Role::Analyst, "440300"),
    ("auditor", Role::Auditor, "440300"),
];

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    init_logging(&args.log)?;
    // A temporary directory lives until this function returns, then is removed.
    let (dir, _temporary) = match args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating --data-dir {}", dir.display()))?;
            (dir, None)
        }
        None => {
            let temporary = tempfile::Builder::new().prefix("fangkong-demo-").tempdir()?;
            (temporary.path().to_path_buf(), Some(temporary))
        }
    };
    remove_leftover_import_files(&dir);
    let key_path = dir.join("fangkong.key");
    if !key_path.exists() {
        config::write_key_file(&key_path, &KeyRing::generate())?;
    }
    let config = Config {
        db: format!("sqlite://{}", dir.join("fangkong.db").display()),
        key_file: Some(key_path.clone()),
        listen: args.listen.clone(),
        log: args.log.clone(),
        shutdown_grace_secs: config::DEFAULT_SHUTDOWN_GRACE_SECS,
        osmand_listen: match args.trackers.osmand_listen.clone() {
            Some(off) if off == "off" => None,
            Some(address) => Some(address),
            None => Some(config::DEFAULT_OSMAND_LISTEN.into()),
        },
        mqtt_url: args.trackers.mqtt_url.clone(),
        mqtt_topic: args.trackers.mqtt_topic.clone().unwrap_or_else(|| config::DEFAULT_MQTT_TOPIC.into()),
        map_style_url: args.map_style_url.clone(),
        metrics_token: Some(
            args.metrics_token
                .clone()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(fangkong_engine::crypto::new_token),
        ),
        policies: Policies::default(),
    };
    if !(0.0..=10_000.0).contains(&args.speed) || !(0.0..=1.0).contains(&args.force_scale) {
        anyhow::bail!("--speed must be 0–10,000 and --force-scale 0–1");
    }
    let mut engine_config = config.engine()?;
    let scaled = (args.speed > 0.0).then(|| Arc::new(fangkong_engine::clock::ScaledClock::new(args.speed)));
    let clock: Arc<dyn fangkong_engine::clock::Clock> = match &scaled {
        Some(scaled) => {
            // Sessions and lockouts last as long in real time as they would unscaled.
            let factor = args.speed.max(1.0) as i64;
            engine_config.sessions.idle_millis *= factor;
            engine_config.sessions.absolute_millis *= factor;
            engine_config.lockout.duration_millis *= factor;
            scaled.clone()
        }
        None => Arc::new(fangkong_engine::clock::SystemClock),
    };
    let store = fangkong_engine::Store::open(&config.db).await.context("opening the demo database")?;
    let bus = Arc::new(fangkong_engine::bus::InProcessBus::default());
    let engine = Engine::start(store, bus, clock.clone(), engine_config).await?;
    let city = Arc::new(fangkong_sim::city::shenzhen(&fangkong_sim::city::CityOptions::default()));
    let created = seed(&engine, &city, args.admin_password.as_deref()).await?;
    anyhow::ensure!((0.0..=1.0).contains(&args.registry_scale), "--registry-scale must be 0–1");
    if created.is_some() && args.registry_scale > 0.0 {
        // In the background: the console is usable at once, the registry fills in seconds.
        let (engine, city, dir, scale) = (Arc::clone(&engine), Arc::clone(&city), dir.clone(), args.registry_scale);
        tokio::spawn(async move {
            if let Err(error) = seed_registry(&engine, city, &dir, scale).await {
                tracing::error!(error = format!("{error:#}"), "the demo registry was not imported");
            }
        });
    }
    if let Some(scaled) = &scaled {
        // A demo restarted on its old data resumes after its last simulated moment.
        if let Some(latest) = fangkong_sim::live::latest_activity(&engine).await? {
            scaled.advance_to(latest);
        }
        let mut options = fangkong_sim::live::LiveOptions::new(args.force_scale);
        if let Some(calls) = args.calls_per_day {
            anyhow::ensure!((0.0..=10_000_000.0).contains(&calls), "--calls-per-day must be 0–10,000,000");
            options.calls_per_day = calls;
        }
        tokio::spawn(fangkong_sim::live::run(Arc::clone(&engine), Arc::clone(&city), options));
    }
    let banner = |bound: SocketAddr| {
        print_line(&format!("Fangkong demo: data and key in {}", dir.display()));
        match &created {
            Some(accounts) => {
                print_line("Accounts (username  password  role  jurisdiction):");
                for (username, password, role, jurisdiction) in accounts {
                    print_line(&format!("  {username:<12} {password:<22} {role:<20} {jurisdiction}"));
                }
            }
            None => print_line("Accounts exist from an earlier run; sign in with their passwords."),
        }
        if let Some(token) = &config.metrics_token {
            print_line(&format!("Metrics: http://{bound}/metrics with Authorization: Bearer {token}"));
        }
        print_line(&format!("fangkong listening on http://{bound}/"));
        print_line(&format!(
            "Open http://{bound}/ in a browser (API reference: http://{bound}/api/docs/). Ctrl-C stops."
        ));
    };
    serve::serve_with_banner(&config, Some(engine), Some(&banner)).await
}

type Account = (String, String, &'static str, String);

/// Where the demo writes its registry import files while it imports them: a directory of
/// this prefix in the data directory, private to the owner, removed afterwards.
const IMPORT_DIR_PREFIX: &str = ".registry-import-";

/// Removes import files a demo left behind: those of a run killed while importing, and the
/// `registry/*.csv` of earlier versions, which kept them (identity numbers and phones in the
/// clear, readable by anyone on the machine).
fn remove_leftover_import_files(dir: &std::path::Path) {
    let mut leftovers: Vec<std::path::PathBuf> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(IMPORT_DIR_PREFIX) {
                leftovers.push(entry.path());
            }
        }
    }
    let old = dir.join("registry");
    for name in ["properties.csv", "residents.csv", "tenancies.csv"] {
        if old.join(name).exists() {
            leftovers.push(old.join(name));
        }
    }
    for path in leftovers {
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        match removed {
            Ok(()) => tracing::info!(path = %path.display(), "removed the demo's leftover registry import files"),
            Err(error) => tracing::warn!(path = %path.display(), %error, "cannot remove leftover import files"),
        }
    }
    // The old directory itself, if nothing else is in it.
    let _ = std::fs::remove_dir(&old);
}

/// The synthetic city's housing registry at `scale`, as of today, written as import files
/// into a private temporary directory in `dir` and imported through the engine as a
/// workstation's files would be. The files (identity numbers and phones in the clear) are
/// removed once imported, and also when the import fails.
async fn seed_registry(
    engine: &Engine,
    city: Arc<fangkong_sim::city::CityMap>,
    dir: &std::path::Path,
    scale: f64,
) -> anyhow::Result<()> {
    use fangkong_engine::registry::{ImportFormat, ImportKind};
    let started = std::time::Instant::now();
    // Mode 0700, removed when dropped: at the end of this function, whatever happens.
    let temporary = tempfile::Builder::new()
        .prefix(IMPORT_DIR_PREFIX)
        .tempdir_in(dir)
        .with_context(|| format!("creating a temporary directory in {}", dir.display()))?;
    let files = temporary.path().to_path_buf();
    let today = engine.now().as_millis().div_euclid(86_400_000);
    let options = fangkong_sim::population::PopulationOptions {
        scale,
        as_of_day: today,
        ..fangkong_sim::population::PopulationOptions::default()
    };
    let written = {
        let files = files.clone();
        tokio::task::spawn_blocking(move || {
            let mut sink = fangkong_sim::registry_files::RegistryFiles::new(options.as_of_day);
            fangkong_sim::population::generate(&city, &options, &mut sink, &mut |_| {});
            sink.write(&files)
        })
        .await??
    };
    let system = Caller::system("demo").with_purpose("demo registry import");
    for (kind, name) in [
        (ImportKind::Properties, "properties.csv"),
        (ImportKind::Residents, "residents.csv"),
        (ImportKind::Tenancies, "tenancies.csv"),
    ] {
        let path = files.join(name);
        let size = std::fs::metadata(&path)?.len();
        let file = Box::new(std::io::BufReader::new(std::fs::File::open(&path)?));
        engine
            .import_registry(&system, kind, ImportFormat::Csv, file, Some(size), Box::new(|_| {}))
            .await
            .with_context(|| format!("importing {}", path.display()))?;
    }
    temporary.close().with_context(|| format!("removing the imported files in {}", files.display()))?;
    tracing::info!(
        units = written.units,
        residents = written.residents,
        tenancies = written.tenancies,
        secs = started.elapsed().as_secs_f64(),
        "demo registry imported"
    );
    Ok(())
}

/// On a new database: the city's tree and the accounts. Returns the accounts created, or
/// `None` if the database already had them.
async fn seed(
    engine: &Engine,
    city: &fangkong_sim::city::CityMap,
    admin_password: Option<&str>,
) -> anyhow::Result<Option<Vec<Account>>> {
    let system = Caller::system("demo");
    let existing = engine.jurisdictions(&system).await?;
    if existing.is_empty() {
        let started = std::time::Instant::now();
        let generated = started.elapsed();
        let nodes: Vec<NodeWrite> = city
            .nodes
            .iter()
            .cloned()
            .map(|node| {
                let shape = city.areas.get(&node.code).cloned();
                NodeWrite { node, shape }
            })
            .collect();
        let count = engine.add_jurisdictions(&system, nodes).await?;
        // The old special zone (Luohu, Futian, Nanshan, Yantian) is urban ground with the
        // 5-minute arrival target; the districts outside it are suburban (10 minutes).
        for district in city.nodes.iter().filter(|n| n.kind == fangkong_core::jurisdiction::JurisdictionKind::District)
        {
            if !["440303", "440304", "440305", "440308"].contains(&district.code.as_str()) {
                let suburban = Some(fangkong_core::dispatch::AreaClass::Suburban);
                engine.set_area_class(&system, &district.code, suburban).await?;
            }
        }
        tracing::info!(
            nodes = count,
            generated_ms = generated.as_millis() as u64,
            stored_ms = (started.elapsed() - generated).as_millis() as u64,
            "demo city created"
        );
    }
    if engine.stats().users > 0 {
        return Ok(None);
    }
    let mut accounts = Vec::new();
    for (username, role, jurisdiction) in ACCOUNTS {
        let password = match (*role, admin_password) {
            (Role::Administrator, Some(given)) => given.to_string(),
            _ => generated_password(username),
        };
        let new = NewUser {
            username: (*username).into(),
            display_name: format!("演示{}", role_name_zh(*role)),
            role: *role,
            jurisdiction: (*jurisdiction).into(),
        };
        engine
            .create_user(&system, new, &password)
            .await
            .with_context(|| format!("creating the demo account {username}"))?;
        accounts.push((username.to_string(), password, role.as_str(), jurisdiction.to_string()));
    }
    Ok(Some(accounts))
}

/// Four groups of four lowercase letters and digits (~79 bits, easy to type) that the
/// password policy accepts for `username`.
fn generated_password(username: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    loop {
        let bytes = fangkong_engine::crypto::random_bytes::<16>();
        let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
        let password = chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-");
        if fangkong_core::auth::password::check_password(&password, username).is_ok() {
            return password;
        }
    }
}

fn role_name_zh(role: Role) -> &'static str {
    match role {
        Role::Administrator => "管理员",
        Role::Commander => "指挥长",
        Role::Dispatcher => "调度员",
        Role::PatrolMember => "巡逻队员",
        Role::CommunityOfficer => "社区民警",
        Role::HousingCoordinator => "协管员",
        Role::HotelClerk => "旅业登记员",
        Role::CheckpointOperator => "卡口检查员",
        Role::Informant => "治安信息员",
        Role::Analyst => "分析员",
        Role::Auditor => "审计员",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_a_demo_account_and_generated_passwords_pass_the_policy() {
        for role in Role::ALL {
            assert!(ACCOUNTS.iter().any(|(_, r, _)| *r == role), "{role}");
        }
        for (username, ..) in ACCOUNTS {
            let password = generated_password(username);
            assert_eq!(password.len(), 19);
            fangkong_core::auth::password::check_password(&password, username).unwrap();
        }
    }
}
