//! `fangkong user …` and `fangkong device …`: account and device administration at the
//! terminal, acting as the system (trusted: it holds the database and the key) and audited
//! under the operating-system user's name.
//!
//! Passwords never come from arguments (they would land in shell history and `ps`): they
//! are read from a prompt without echo, or from the first line of stdin when it is not a
//! terminal. A server running on the same database applies these changes within a minute.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fangkong_core::auth::account::NewUser;
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_engine::{Caller, Engine, NewDevice};

use crate::config::{Config, ConfigArgs};
use crate::{init_logging, print_line, serve};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from a prompt or stdin.
    Add(UserAddArgs),
    /// List users.
    List(DbArgs),
    /// Lock a user until unlocked; their sessions end.
    Lock(UserArgs),
    /// Unlock a user (administrative lock or after failed sign-ins).
    Unlock(UserArgs),
    /// Set a new password (from a prompt or stdin); the user's sessions end.
    ResetPassword(UserArgs),
}

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Register a device and print its credential (shown once).
    Add(DeviceAddArgs),
    /// Revoke a device's credential.
    Revoke(DeviceArgs),
    /// List devices.
    List(DbArgs),
}

#[derive(Args, Debug)]
pub struct DbArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Args, Debug)]
pub struct UserArgs {
    /// The username.
    username: String,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Args, Debug)]
pub struct UserAddArgs {
    #[arg(long)]
    username: String,
    /// One of: administrator, commander, dispatcher, patrol_member, community_officer,
    /// housing_coordinator, hotel_clerk, checkpoint_operator, informant, analyst, auditor.
    #[arg(long)]
    role: String,
    /// Code of the jurisdiction node (city, district, sub-district, community or police station).
    #[arg(long)]
    jurisdiction: String,
    /// Name shown to colleagues; default: the username.
    #[arg(long)]
    display_name: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Args, Debug)]
pub struct DeviceAddArgs {
    /// tracker, alarm-point or checkpoint.
    #[arg(long)]
    kind: String,
    /// What the device sends to identify itself (for OsmAnd trackers, its `id`).
    #[arg(long)]
    unique_id: String,
    /// The patrol unit, alarm point or checkpoint it belongs to.
    #[arg(long)]
    unit: Option<String>,
    /// Code of the jurisdiction node it belongs to; default: the city.
    #[arg(long)]
    jurisdiction: Option<String>,
    /// What people call the place of a fixed device (an alarm point's shop, a checkpoint).
    #[arg(long)]
    name: Option<String>,
    /// Where a fixed device stands: latitude, longitude in WGS 84 (e.g. 22.5431,114.0579).
    #[arg(long, value_name = "LAT,LON")]
    location: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
}

/// `LAT,LON` in WGS 84.
fn parse_location(text: &str) -> anyhow::Result<fangkong_geo::LatLon> {
    let (lat, lon) = text.split_once(',').context("--location: give LAT,LON (e.g. 22.5431,114.0579)")?;
    let lat: f64 = lat.trim().parse().with_context(|| format!("--location: latitude {lat:?} is not a number"))?;
    let lon: f64 = lon.trim().parse().with_context(|| format!("--location: longitude {lon:?} is not a number"))?;
    fangkong_geo::LatLon::new(lat, lon).map_err(|e| anyhow::anyhow!("--location: {e}"))
}

#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// The device's unique id.
    unique_id: String,
    #[command(flatten)]
    config: ConfigArgs,
}

/// The caller for terminal commands: the system, named after the operating-system user.
pub(crate) fn terminal_caller() -> Caller {
    let who = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    Caller::system(format!("cli:{who}"))
}

pub(crate) async fn open(config: &ConfigArgs) -> anyhow::Result<std::sync::Arc<Engine>> {
    let config = Config::load(config)?;
    init_logging(if config.log == "info" { "warn" } else { &config.log })?;
    serve::open_engine(&config.db, config.engine()?).await
}

/// Reads a new password: prompted twice without echo on a terminal, else stdin's first line.
fn read_new_password(username: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {username}: "))?;
        let second = rpassword::prompt_password("Again: ")?;
        if first != second {
            bail!("the two passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            bail!("no password on stdin (send it as the first line)");
        }
        Ok(password)
    }
}

pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    let caller = terminal_caller();
    match command {
        UserCommand::Add(args) => {
            let role = Role::parse(&args.role).with_context(|| {
                let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("--role {:?} is not one of {}", args.role, known.join(", "))
            })?;
            let engine = open(&args.config).await?;
            let password = read_new_password(&args.username)?;
            let new = NewUser {
                display_name: args.display_name.unwrap_or_else(|| args.username.clone()),
                username: args.username,
                role,
                jurisdiction: args.jurisdiction,
            };
            let result = engine.create_user(&caller, new, &password).await;
            engine.shutdown().await;
            let user = result?;
            print_line(&format!("created {} ({} in {})", user.username, user.role, user.jurisdiction));
        }
        UserCommand::List(args) => {
            let engine = open(&args.config).await?;
            let result = engine.users(&caller.with_purpose("account administration at the terminal")).await;
            engine.shutdown().await;
            for user in result? {
                let status = match (user.disabled, user.login.locked_until.is_some()) {
                    (true, _) => "disabled",
                    (false, true) => "locked",
                    _ => "active",
                };
                print_line(&format!(
                    "{:<20} {:<20} {:<14} {:<9} {}",
                    user.username, user.role, user.jurisdiction, status, user.display_name
                ));
            }
        }
        UserCommand::Lock(args) => {
            let engine = open(&args.config).await?;
            let result = engine.lock_user(&caller, &args.username).await;
            engine.shutdown().await;
            result?;
            print_line(&format!("locked {}; their sessions have ended", args.username));
        }
        UserCommand::Unlock(args) => {
            let engine = open(&args.config).await?;
            let result = engine.unlock_user(&caller, &args.username).await;
            engine.shutdown().await;
            result?;
            print_line(&format!("unlocked {}", args.username));
        }
        UserCommand::ResetPassword(args) => {
            let engine = open(&args.config).await?;
            let password = read_new_password(&args.username)?;
            let result = engine.reset_password(&caller, &args.username, &password).await;
            engine.shutdown().await;
            result?;
            print_line(&format!("reset the password of {}; their sessions have ended", args.username));
        }
    }
    Ok(())
}

pub async fn device(command: DeviceCommand) -> anyhow::Result<()> {
    let caller = terminal_caller();
    match command {
        DeviceCommand::Add(args) => {
            let kind = DeviceKind::parse(&args.kind)
                .with_context(|| format!("--kind {:?} is not one of tracker, alarm-point, checkpoint", args.kind))?;
            let location = args.location.as_deref().map(parse_location).transpose()?;
            let engine = open(&args.config).await?;
            let jurisdiction = match args.jurisdiction {
                Some(code) => code,
                None => engine
                    .jurisdictions(&caller)
                    .await?
                    .into_iter()
                    .find(|j| j.parent.is_none())
                    .map(|j| j.code)
                    .context("the database has no jurisdictions yet; pass --jurisdiction")?,
            };
            let new =
                NewDevice { unique_id: args.unique_id, kind, unit: args.unit, jurisdiction, name: args.name, location };
            let result = engine.add_device(&caller, new).await;
            engine.shutdown().await;
            let (device, secret) = result?;
            print_line(&format!("registered {} {} in {}", device.kind, device.unique_id, device.jurisdiction));
            print_line(&format!("unique id: {}", device.unique_id));
            print_line(&format!("secret:    {secret}"));
            print_line("the secret is shown once; devices send Authorization: Basic base64(unique_id:secret)");
        }
        DeviceCommand::Revoke(args) => {
            let engine = open(&args.config).await?;
            let result = engine.revoke_device(&caller, &args.unique_id).await;
            engine.shutdown().await;
            result?;
            print_line(&format!("revoked {}", args.unique_id));
        }
        DeviceCommand::List(args) => {
            let engine = open(&args.config).await?;
            let result = engine.devices(&caller).await;
            engine.shutdown().await;
            for device in result? {
                let status = if device.revoked_at.is_some() { "revoked" } else { "active" };
                let place = device.location.map(|p| format!(" {:.6},{:.6}", p.lat(), p.lon())).unwrap_or_default();
                print_line(&format!(
                    "{:<20} {:<12} {:<14} {:<8} {}{}{}",
                    device.unique_id,
                    device.kind,
                    device.jurisdiction,
                    status,
                    device.unit.unwrap_or_default(),
                    device.name.map(|name| format!(" {name}")).unwrap_or_default(),
                    place
                ));
            }
        }
    }
    Ok(())
}
