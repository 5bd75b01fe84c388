//! Configuration: command-line flags, then `FANGKONG_*` environment variables, then a TOML
//! file (`--config FILE` or `FANGKONG_CONFIG`), then built-in defaults — the first that
//! says something wins.
//!
//! The file uses the flags' names:
//!
//! ```toml
//! db = "postgres://fangkong@db.internal/fangkong"
//! key_file = "/etc/fangkong/fangkong.key"
//! listen = "0.0.0.0:8080"
//! osmand_listen = "0.0.0.0:5055"
//! mqtt_url = "mqtt://fangkong:secret@broker.internal:1883"
//! mqtt_topic = "fangkong/positions/#"
//! log = "info,fangkong_server=debug"
//! metrics_token = "a long random string"  # Prometheus sends it as Authorization: Bearer …
//! shutdown_grace_secs = 30
//! session_idle_minutes = 30
//! session_max_hours = 12
//! lockout_threshold = 5
//! lockout_minutes = 10
//! audit_retention_days = 730
//! h3_resolution = 9
//! position_retention_days = 90
//! outbox_retention_days = 3           # events kept for other nodes to follow (the tables are the record)
//! device_offline_minutes = 10         # an alarm point or checkpoint silent this long is offline
//!
//! [dispatch]
//! agency_id = "110.sz.example.cn"     # this centre in exchange documents (EIDO)
//! duplicate_radius_m = 300            # a new call this near an open one of its category…
//! duplicate_window_minutes = 30       # …this soon after it is flagged as a possible duplicate
//! history_radius_m = 200              # prior history: incidents this near…
//! history_days = 90                   # …in this many days
//! arrival_target_urban_s = 300        # arrival targets by area class
//! arrival_target_suburban_s = 600
//! position_stale_minutes = 10         # units with older fixes are not recommended
//!
//! [registry]
//! min_area_per_person_m2 = 5          # a unit with less usable area per person is overcrowded…
//! max_persons_per_room = 4            # …and so is one with more persons per room (0: off)
//! permit_warning_days = 30            # permits expiring this soon are listed
//! ```
//!
//! An unknown key is an error that names it, so a typo never silently means "default".

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use fangkong_core::auth::lockout::LockoutPolicy;
use fangkong_core::auth::session::SessionPolicy;
use fangkong_engine::EngineConfig;
use fangkong_engine::keys::KeyRing;
use serde::Deserialize;

pub const DEFAULT_DB: &str = "sqlite://fangkong.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_LOG: &str = "info";
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
pub const DEFAULT_OSMAND_LISTEN: &str = "127.0.0.1:5055";
pub const DEFAULT_MQTT_TOPIC: &str = "fangkong/positions/#";

/// Flags shared by every command that works on a database.
#[derive(Args, Debug, Default, Clone)]
pub struct ConfigArgs {
    /// A TOML configuration file.
    #[arg(long, value_name = "FILE", env = "FANGKONG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DATABASE [default: sqlite://fangkong.db]
    #[arg(long, value_name = "URL", env = "FANGKONG_DB")]
    pub db: Option<String>,
    /// The master key file (create one with `fangkong keygen FILE`).
    #[arg(long, value_name = "FILE", env = "FANGKONG_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR", env = "FANGKONG_LISTEN")]
    pub listen: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or tracing directives [default: info]
    #[arg(long, value_name = "FILTER", env = "FANGKONG_LOG")]
    pub log: Option<String>,
    /// Seconds requests in flight may take to finish after SIGTERM [default: 30]
    #[arg(long, value_name = "SECONDS", env = "FANGKONG_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    #[command(flatten)]
    pub trackers: TrackerArgs,
    /// A MapLibre style URL for the console's base map (a deployment's own tile server)
    /// [default: none; the console draws its own boundary layers]
    #[arg(long, value_name = "URL", env = "FANGKONG_MAP_STYLE_URL")]
    pub map_style_url: Option<String>,
    /// The bearer token a Prometheus scraper sends for /metrics (prefer the environment or
    /// the file: flags show in process lists) [default: none; only administrators' sessions]
    #[arg(long, value_name = "TOKEN", env = "FANGKONG_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// Where trackers report.
#[derive(Args, Debug, Default, Clone)]
pub struct TrackerArgs {
    /// Address of the OsmAnd tracker listener (Traccar Client and compatible devices), or
    /// `off` [default: 127.0.0.1:5055; use 0.0.0.0:5055 to take trackers from the network]
    #[arg(long, value_name = "ADDR", env = "FANGKONG_OSMAND_LISTEN")]
    pub osmand_listen: Option<String>,
    /// MQTT broker to take positions from, mqtt://[user:password@]host[:port] [default: none]
    #[arg(long, value_name = "URL", env = "FANGKONG_MQTT_URL")]
    pub mqtt_url: Option<String>,
    /// Topic filter of position messages [default: fangkong/positions/#]
    #[arg(long, value_name = "TOPIC", env = "FANGKONG_MQTT_TOPIC")]
    pub mqtt_topic: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    db: Option<String>,
    key_file: Option<PathBuf>,
    listen: Option<String>,
    log: Option<String>,
    shutdown_grace_secs: Option<u64>,
    osmand_listen: Option<String>,
    mqtt_url: Option<String>,
    mqtt_topic: Option<String>,
    map_style_url: Option<String>,
    metrics_token: Option<String>,
    session_idle_minutes: Option<u32>,
    session_max_hours: Option<u32>,
    lockout_threshold: Option<u32>,
    lockout_minutes: Option<u32>,
    audit_retention_days: Option<u32>,
    h3_resolution: Option<u8>,
    position_retention_days: Option<u32>,
    outbox_retention_days: Option<u32>,
    device_offline_minutes: Option<u32>,
    dispatch: Option<DispatchFile>,
    registry: Option<RegistryFile>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    min_area_per_person_m2: Option<u32>,
    max_persons_per_room: Option<u32>,
    permit_warning_days: Option<u32>,
}

/// The housing registry's limits a deployment may tune (file only).
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct RegistrySettings {
    pub min_area_per_person_m2: u32,
    pub max_persons_per_room: u32,
    pub permit_warning_days: u32,
}

impl Default for RegistrySettings {
    fn default() -> RegistrySettings {
        let engine = fangkong_engine::registry::RegistryConfig::default();
        RegistrySettings {
            min_area_per_person_m2: engine.occupancy.min_area_per_person_m2 as u32,
            max_persons_per_room: engine.occupancy.max_persons_per_room,
            permit_warning_days: engine.permit_warning_days as u32,
        }
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct DispatchFile {
    agency_id: Option<String>,
    duplicate_radius_m: Option<u32>,
    duplicate_window_minutes: Option<u32>,
    history_radius_m: Option<u32>,
    history_days: Option<u32>,
    arrival_target_urban_s: Option<u32>,
    arrival_target_suburban_s: Option<u32>,
    position_stale_minutes: Option<u32>,
}

/// The dispatch settings a deployment may tune (file only).
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct DispatchSettings {
    pub agency_id: String,
    pub duplicate_radius_m: u32,
    pub duplicate_window_minutes: u32,
    pub history_radius_m: u32,
    pub history_days: u32,
    pub arrival_target_urban_s: u32,
    pub arrival_target_suburban_s: u32,
    pub position_stale_minutes: u32,
}

impl Default for DispatchSettings {
    fn default() -> DispatchSettings {
        let engine = fangkong_engine::DispatchConfig::default();
        DispatchSettings {
            agency_id: engine.agency_id,
            duplicate_radius_m: engine.duplicates.radius_m as u32,
            duplicate_window_minutes: (engine.duplicates.window_ms / 60_000) as u32,
            history_radius_m: engine.history_radius_m as u32,
            history_days: engine.history_days,
            arrival_target_urban_s: engine.targets.urban_s as u32,
            arrival_target_suburban_s: engine.targets.suburban_s as u32,
            position_stale_minutes: (engine.position_stale_ms / 60_000) as u32,
        }
    }
}

/// The security policies a deployment may tune (file only: they are not per-run choices).
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Policies {
    pub session_idle_minutes: u32,
    pub session_max_hours: u32,
    pub lockout_threshold: u32,
    pub lockout_minutes: u32,
    pub audit_retention_days: u32,
    /// The H3 resolution of located records' cells (0–15).
    pub h3_resolution: u8,
    /// Tracker history older than this is purged.
    pub position_retention_days: u32,
    /// Events older than this leave the outbox (another node that was away longer
    /// reloads from the tables).
    pub outbox_retention_days: u32,
    /// A fixed device (alarm point, checkpoint terminal) silent this long is shown offline.
    pub device_offline_minutes: u32,
    pub dispatch: DispatchSettings,
    pub registry: RegistrySettings,
}

impl Default for Policies {
    fn default() -> Policies {
        Policies {
            session_idle_minutes: 30,
            session_max_hours: 12,
            lockout_threshold: 5,
            lockout_minutes: 10,
            audit_retention_days: 730,
            h3_resolution: 9,
            position_retention_days: 90,
            outbox_retention_days: 3,
            device_offline_minutes: 10,
            dispatch: DispatchSettings::default(),
            registry: RegistrySettings::default(),
        }
    }
}

/// The configuration in effect.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Config {
    pub db: String,
    pub key_file: Option<PathBuf>,
    pub listen: String,
    pub log: String,
    pub shutdown_grace_secs: u64,
    /// `None`: no OsmAnd listener.
    pub osmand_listen: Option<String>,
    pub mqtt_url: Option<String>,
    pub mqtt_topic: String,
    /// The console's base map style, if the deployment has a tile server.
    pub map_style_url: Option<String>,
    /// The scrape token `/metrics` accepts besides administrators' sessions.
    pub metrics_token: Option<String>,
    pub policies: Policies,
}

impl Config {
    pub fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Policies::default();
        let policies = Policies {
            session_idle_minutes: file.session_idle_minutes.unwrap_or(defaults.session_idle_minutes),
            session_max_hours: file.session_max_hours.unwrap_or(defaults.session_max_hours),
            lockout_threshold: file.lockout_threshold.unwrap_or(defaults.lockout_threshold),
            lockout_minutes: file.lockout_minutes.unwrap_or(defaults.lockout_minutes),
            audit_retention_days: file.audit_retention_days.unwrap_or(defaults.audit_retention_days),
            h3_resolution: file.h3_resolution.unwrap_or(defaults.h3_resolution),
            position_retention_days: file.position_retention_days.unwrap_or(defaults.position_retention_days),
            outbox_retention_days: file.outbox_retention_days.unwrap_or(defaults.outbox_retention_days),
            device_offline_minutes: file.device_offline_minutes.unwrap_or(defaults.device_offline_minutes),
            dispatch: {
                let given = file.dispatch.unwrap_or_default();
                let d = defaults.dispatch;
                DispatchSettings {
                    agency_id: given.agency_id.unwrap_or(d.agency_id),
                    duplicate_radius_m: given.duplicate_radius_m.unwrap_or(d.duplicate_radius_m),
                    duplicate_window_minutes: given.duplicate_window_minutes.unwrap_or(d.duplicate_window_minutes),
                    history_radius_m: given.history_radius_m.unwrap_or(d.history_radius_m),
                    history_days: given.history_days.unwrap_or(d.history_days),
                    arrival_target_urban_s: given.arrival_target_urban_s.unwrap_or(d.arrival_target_urban_s),
                    arrival_target_suburban_s: given.arrival_target_suburban_s.unwrap_or(d.arrival_target_suburban_s),
                    position_stale_minutes: given.position_stale_minutes.unwrap_or(d.position_stale_minutes),
                }
            },
            registry: {
                let given = file.registry.unwrap_or_default();
                let r = defaults.registry;
                RegistrySettings {
                    min_area_per_person_m2: given.min_area_per_person_m2.unwrap_or(r.min_area_per_person_m2),
                    max_persons_per_room: given.max_persons_per_room.unwrap_or(r.max_persons_per_room),
                    permit_warning_days: given.permit_warning_days.unwrap_or(r.permit_warning_days),
                }
            },
        };
        let d = &policies.dispatch;
        if d.arrival_target_urban_s == 0 || d.arrival_target_suburban_s == 0 || d.position_stale_minutes == 0 {
            bail!("config: dispatch arrival targets and position_stale_minutes must be at least 1");
        }
        if d.agency_id.is_empty() || d.agency_id.contains(char::is_whitespace) {
            bail!("config: dispatch.agency_id must be a domain name without spaces, not {:?}", d.agency_id);
        }
        if policies.h3_resolution > 15 {
            bail!("config: h3_resolution must be 0–15, not {}", policies.h3_resolution);
        }
        if policies.session_idle_minutes == 0 || policies.session_max_hours == 0 || policies.lockout_threshold == 0 {
            bail!("config: session_idle_minutes, session_max_hours and lockout_threshold must be at least 1");
        }
        Ok(Config {
            db: args.db.clone().or(file.db).unwrap_or_else(|| DEFAULT_DB.into()),
            key_file: args.key_file.clone().or(file.key_file),
            listen: args.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            log: args.log.clone().or(file.log).unwrap_or_else(|| DEFAULT_LOG.into()),
            shutdown_grace_secs: args
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
            osmand_listen: match args.trackers.osmand_listen.clone().or(file.osmand_listen) {
                Some(off) if off == "off" => None,
                Some(address) => Some(address),
                None => Some(DEFAULT_OSMAND_LISTEN.into()),
            },
            mqtt_url: args.trackers.mqtt_url.clone().or(file.mqtt_url).filter(|u| !u.is_empty()),
            mqtt_topic: args
                .trackers
                .mqtt_topic
                .clone()
                .or(file.mqtt_topic)
                .unwrap_or_else(|| DEFAULT_MQTT_TOPIC.into()),
            map_style_url: args.map_style_url.clone().or(file.map_style_url).filter(|u| !u.is_empty()),
            metrics_token: args.metrics_token.clone().or(file.metrics_token).filter(|t| !t.trim().is_empty()),
            policies,
        })
    }

    /// The engine configuration: the key file's keys and the policies.
    pub fn engine(&self) -> anyhow::Result<EngineConfig> {
        let path = self.key_file.as_deref().context(
            "no key file: pass --key-file FILE or set FANGKONG_KEY_FILE (create one with `fangkong keygen FILE`)",
        )?;
        Ok(engine_config(read_key_file(path)?, &self.policies))
    }
}

pub fn engine_config(keys: KeyRing, policies: &Policies) -> EngineConfig {
    let minute = 60_000i64;
    EngineConfig {
        sessions: SessionPolicy {
            idle_millis: i64::from(policies.session_idle_minutes) * minute,
            absolute_millis: i64::from(policies.session_max_hours) * 60 * minute,
        },
        lockout: LockoutPolicy {
            threshold: policies.lockout_threshold,
            duration_millis: i64::from(policies.lockout_minutes) * minute,
        },
        audit_retention_days: policies.audit_retention_days,
        outbox_retention_days: policies.outbox_retention_days,
        h3_resolution: policies.h3_resolution,
        avl: fangkong_engine::avl::AvlConfig {
            retention_days: policies.position_retention_days,
            device_offline_ms: i64::from(policies.device_offline_minutes.max(1)) * minute,
            ..fangkong_engine::avl::AvlConfig::default()
        },
        dispatch: {
            let d = &policies.dispatch;
            let defaults = fangkong_engine::DispatchConfig::default();
            fangkong_engine::DispatchConfig {
                agency_id: d.agency_id.clone(),
                duplicates: fangkong_core::dispatch::DuplicateRule {
                    radius_m: f64::from(d.duplicate_radius_m),
                    window_ms: i64::from(d.duplicate_window_minutes) * minute,
                },
                history_radius_m: f64::from(d.history_radius_m),
                history_days: d.history_days,
                targets: fangkong_core::dispatch::ResponseTargets {
                    urban_s: i64::from(d.arrival_target_urban_s),
                    suburban_s: i64::from(d.arrival_target_suburban_s),
                },
                position_stale_ms: i64::from(d.position_stale_minutes) * minute,
                ..defaults
            }
        },
        registry: fangkong_engine::registry::RegistryConfig {
            occupancy: fangkong_core::registry::OccupancyLimits {
                min_area_per_person_m2: f64::from(policies.registry.min_area_per_person_m2),
                max_persons_per_room: policies.registry.max_persons_per_room,
            },
            permit_warning_days: i64::from(policies.registry.permit_warning_days),
        },
        ..EngineConfig::new(keys)
    }
}

pub fn read_key_file(path: &Path) -> anyhow::Result<KeyRing> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    KeyRing::parse(&text).with_context(|| format!("key file {}", path.display()))
}

/// Writes a new key file readable by its owner only; never replaces an existing file.
pub fn write_key_file(path: &Path, keys: &KeyRing) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("cannot create key file {}", path.display()))?;
    file.write_all(keys.to_file_text().as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    // toml's messages span several lines (they quote the source); keep the first.
    toml::from_str(&text).map_err(|error| {
        let first_line = error.message().lines().next().unwrap_or("invalid TOML").to_string();
        let line = error.span().map(|span| text[..span.start].matches('\n').count() + 1);
        match line {
            Some(line) => anyhow::anyhow!("config file {} line {line}: {first_line}", path.display()),
            None => anyhow::anyhow!("config file {}: {first_line}", path.display()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), contents).unwrap();
        file
    }

    #[test]
    fn defaults_apply_when_nothing_is_said() {
        let config = Config::load(&ConfigArgs::default()).unwrap();
        assert_eq!(
            config,
            Config {
                db: DEFAULT_DB.into(),
                key_file: None,
                listen: DEFAULT_LISTEN.into(),
                log: "info".into(),
                shutdown_grace_secs: 30,
                osmand_listen: Some(DEFAULT_OSMAND_LISTEN.into()),
                mqtt_url: None,
                mqtt_topic: DEFAULT_MQTT_TOPIC.into(),
                map_style_url: None,
                metrics_token: None,
                policies: Policies::default(),
            }
        );
        assert!(config.engine().unwrap_err().to_string().contains("fangkong keygen"));
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let toml = file(
            "db = \"postgres://fk@db/fk\"\nlisten = \"0.0.0.0:9000\"\nshutdown_grace_secs = 5\nlockout_threshold = 3\nh3_resolution = 10\nosmand_listen = \"off\"\nmqtt_url = \"mqtt://mq:1883\"\nposition_retention_days = 30\n\
             [dispatch]\nagency_id = \"110.sz.example.cn\"\narrival_target_suburban_s = 720\nduplicate_radius_m = 150\n\
             [registry]\nmax_persons_per_room = 3\n",
        );
        let args =
            ConfigArgs { config: Some(toml.path().into()), listen: Some("127.0.0.1:1".into()), ..Default::default() };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.db, "postgres://fk@db/fk");
        assert_eq!(config.listen, "127.0.0.1:1");
        assert_eq!(config.shutdown_grace_secs, 5);
        assert_eq!(config.log, "info");
        assert_eq!(config.policies.lockout_threshold, 3);
        let engine = engine_config(KeyRing::generate(), &config.policies);
        assert_eq!(engine.lockout.threshold, 3);
        assert_eq!(engine.sessions.idle_millis, 30 * 60_000);
        assert_eq!(engine.h3_resolution, 10);
        assert_eq!(engine.avl.retention_days, 30);
        assert_eq!((config.osmand_listen, config.mqtt_url.as_deref()), (None, Some("mqtt://mq:1883")));
        assert_eq!(config.mqtt_topic, DEFAULT_MQTT_TOPIC);
        assert_eq!(engine.dispatch.agency_id, "110.sz.example.cn");
        assert_eq!((engine.dispatch.targets.urban_s, engine.dispatch.targets.suburban_s), (300, 720));
        assert_eq!(engine.dispatch.duplicates.radius_m, 150.0);
        assert_eq!(engine.dispatch.duplicates.window_ms, 30 * 60_000, "the rest keep their defaults");
        assert_eq!(engine.registry.occupancy.max_persons_per_room, 3);
        assert_eq!(engine.registry.occupancy.min_area_per_person_m2, 5.0);
    }

    #[test]
    fn a_bad_file_is_named_with_the_line_and_reason() {
        let typo = file("db = \"sqlite://x.db\"\nlisten_addr = \"0.0.0.0:1\"\n");
        let error = Config::load(&ConfigArgs { config: Some(typo.path().into()), ..Default::default() }).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 2") && message.contains("listen_addr"), "{message}");
        assert!(!message.contains('\n'), "one line: {message:?}");

        let missing = ConfigArgs { config: Some("/nonexistent/fangkong.toml".into()), ..Default::default() };
        let message = format!("{:#}", Config::load(&missing).unwrap_err());
        assert!(message.contains("cannot read config file /nonexistent/fangkong.toml"), "{message}");

        let wrong_type = file("shutdown_grace_secs = \"soon\"\n");
        let error = Config::load(&ConfigArgs { config: Some(wrong_type.path().into()), ..Default::default() });
        assert!(error.unwrap_err().to_string().contains("line 1"));
        let zero = file("lockout_threshold = 0\n");
        assert!(Config::load(&ConfigArgs { config: Some(zero.path().into()), ..Default::default() }).is_err());
        let fine = file("h3_resolution = 16\n");
        let error = Config::load(&ConfigArgs { config: Some(fine.path().into()), ..Default::default() }).unwrap_err();
        assert!(error.to_string().contains("h3_resolution must be 0–15"), "{error}");
        let typo = file("[dispatch]\nduplicate_radius = 100\n");
        let error = Config::load(&ConfigArgs { config: Some(typo.path().into()), ..Default::default() }).unwrap_err();
        assert!(error.to_string().contains("line 2") && error.to_string().contains("duplicate_radius"), "{error}");
        let zero = file("[dispatch]\narrival_target_urban_s = 0\n");
        assert!(Config::load(&ConfigArgs { config: Some(zero.path().into()), ..Default::default() }).is_err());
    }

    #[test]
    fn key_files_are_created_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fk.key");
        let keys = KeyRing::generate();
        write_key_file(&path, &keys).unwrap();
        assert_eq!(read_key_file(&path).unwrap().check_value(), keys.check_value());
        assert!(write_key_file(&path, &KeyRing::generate()).is_err(), "an existing key is never replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("bad.key"), "not base64!!").unwrap();
        let message = format!("{:#}", read_key_file(&dir.path().join("bad.key")).unwrap_err());
        assert!(message.contains("bad.key") && message.contains("base64"), "{message}");
    }
}
