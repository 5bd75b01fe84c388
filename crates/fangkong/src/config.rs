//! Configuration: command-line flags, then `FANGKONG_*` environment variables, then a TOML
//! file (`--config FILE` or `FANGKONG_CONFIG`), then built-in defaults — the first that
//! says something wins.
//!
//! The file uses the flags' names:
//!
//! ```toml
//! db = "postgres://fangkong@db.internal/fangkong"
//! listen = "0.0.0.0:8080"
//! log = "info,fangkong_server=debug"
//! shutdown_grace_secs = 30
//! ```
//!
//! An unknown key is an error that names it, so a typo never silently means "default".

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

pub const DEFAULT_DB: &str = "sqlite://fangkong.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_LOG: &str = "info";
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

/// Flags shared by every command that works on a database.
#[derive(Args, Debug, Default)]
pub struct ConfigArgs {
    /// A TOML configuration file.
    #[arg(long, value_name = "FILE", env = "FANGKONG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DATABASE [default: sqlite://fangkong.db]
    #[arg(long, value_name = "URL", env = "FANGKONG_DB")]
    pub db: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR", env = "FANGKONG_LISTEN")]
    pub listen: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or tracing directives [default: info]
    #[arg(long, value_name = "FILTER", env = "FANGKONG_LOG")]
    pub log: Option<String>,
    /// Seconds requests in flight may take to finish after SIGTERM [default: 30]
    #[arg(long, value_name = "SECONDS", env = "FANGKONG_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    db: Option<String>,
    listen: Option<String>,
    log: Option<String>,
    shutdown_grace_secs: Option<u64>,
}

/// The configuration in effect.
#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub db: String,
    pub listen: String,
    pub log: String,
    pub shutdown_grace_secs: u64,
}

impl Config {
    pub fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Ok(Config {
            db: args.db.clone().or(file.db).unwrap_or_else(|| DEFAULT_DB.into()),
            listen: args.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            log: args.log.clone().or(file.log).unwrap_or_else(|| DEFAULT_LOG.into()),
            shutdown_grace_secs: args
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
        })
    }
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
                listen: DEFAULT_LISTEN.into(),
                log: "info".into(),
                shutdown_grace_secs: 30
            }
        );
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let toml = file("db = \"postgres://fk@db/fk\"\nlisten = \"0.0.0.0:9000\"\nshutdown_grace_secs = 5\n");
        let args =
            ConfigArgs { config: Some(toml.path().into()), listen: Some("127.0.0.1:1".into()), ..Default::default() };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.db, "postgres://fk@db/fk");
        assert_eq!(config.listen, "127.0.0.1:1");
        assert_eq!(config.shutdown_grace_secs, 5);
        assert_eq!(config.log, "info");
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
    }
}
