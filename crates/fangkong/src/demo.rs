//! `fangkong demo`: the server on a SQLite file with the demo city and one account per role.

use std::net::SocketAddr;
use std::path::PathBuf;

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
        policies: Policies::default(),
    };
    let engine = serve::open_engine(&config.db, config.engine()?).await?;
    let created = seed(&engine, args.admin_password.as_deref()).await?;
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
        print_line(&format!("fangkong listening on http://{bound}/"));
        print_line(&format!(
            "Open http://{bound}/ in a browser (API reference: http://{bound}/api/docs/). Ctrl-C stops."
        ));
    };
    serve::serve_with_banner(&config, Some(engine), Some(&banner)).await
}

type Account = (String, String, &'static str, String);

/// On a new database: the city's tree and the accounts. Returns the accounts created, or
/// `None` if the database already had them.
async fn seed(engine: &Engine, admin_password: Option<&str>) -> anyhow::Result<Option<Vec<Account>>> {
    let system = Caller::system("demo");
    let existing = engine.jurisdictions(&system).await?;
    if existing.is_empty() {
        let started = std::time::Instant::now();
        let city = fangkong_sim::city::shenzhen(&fangkong_sim::city::CityOptions::default());
        let generated = started.elapsed();
        let nodes: Vec<NodeWrite> = city
            .nodes
            .into_iter()
            .map(|node| {
                let shape = city.areas.get(&node.code).cloned();
                NodeWrite { node, shape }
            })
            .collect();
        let count = engine.add_jurisdictions(&system, nodes).await?;
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
