//! `fangkong backup` and `fangkong restore`: a checked copy of a SQLite database taken while
//! the server runs, and putting one back.
//!
//! A copy is only worth keeping if it can be restored, so both commands check the copy the
//! same way before it takes the final name: SQLite's integrity check, the migrations (the
//! released ones, none edited or newer), and the audit hash chain under the deployment's key
//! — the very verification `fangkong audit verify` runs. A copy that fails is removed and
//! the command exits 1 naming the check. Copies are written under a temporary name and
//! renamed when complete, so a crash never leaves a half-written file under the real name.
//!
//! PostgreSQL has its own tools (`pg_dump`/`pg_restore`, `pg_basebackup` with WAL archiving);
//! on a `postgres://` URL these commands say which to use and exit 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use fangkong_engine::{Caller, Engine};
use fangkong_store::DbUrl;
use fangkong_store::backup::{sqlite_companions, sqlite_in_use, sqlite_integrity_check, sqlite_snapshot};

use crate::config::{self, Policies};
use crate::{audit, init_logging, print_line};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["db", "data_dir"])))]
pub struct BackupArgs {
    /// The database to copy: sqlite://PATH (for PostgreSQL the command names the pg_dump to run).
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// A demo's data directory: its fangkong.db, checked with its fangkong.key.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The backup file to write (created 0600; an existing file is never replaced).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The master key, to verify the copy's audit trail [default: DIR/fangkong.key with --data-dir].
    #[arg(long, value_name = "FILE", env = "FANGKONG_KEY_FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["db", "data_dir"])))]
pub struct RestoreArgs {
    /// The backup file (made by `fangkong backup`).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Where to restore it: sqlite://PATH (for PostgreSQL the command names the pg_restore to run).
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// A data directory to restore into as DIR/fangkong.db (created if missing; the key file
    /// is copied there if it has none).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The master key the backup was made with [default: DIR/fangkong.key with --data-dir].
    #[arg(long, value_name = "FILE", env = "FANGKONG_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Replace an existing database (never one a running server holds).
    #[arg(long)]
    force: bool,
}

/// Where a command's database is, and the key file a data directory implies.
enum Location {
    Sqlite { path: PathBuf, dir_key: Option<PathBuf> },
    Postgres { url: String },
}

fn locate(db: Option<&str>, data_dir: Option<&Path>) -> anyhow::Result<Location> {
    if let Some(dir) = data_dir {
        return Ok(Location::Sqlite { path: dir.join("fangkong.db"), dir_key: Some(dir.join("fangkong.key")) });
    }
    let url = db.context("give --db URL or --data-dir DIR")?;
    Ok(match DbUrl::parse(url)? {
        DbUrl::Sqlite { path } => Location::Sqlite { path, dir_key: None },
        DbUrl::Postgres { url } => Location::Postgres { url: fangkong_store::redact_url(&url) },
    })
}

/// A database file under its temporary name: removed with its `-wal` and `-shm` unless it
/// was renamed to its final name.
struct Partial {
    path: PathBuf,
    kept: bool,
}

impl Partial {
    /// `.NAME.partial` beside `final_path`; a leftover of an interrupted run is removed.
    fn beside(final_path: &Path) -> anyhow::Result<Partial> {
        let name = final_path.file_name().with_context(|| format!("{} is not a file name", final_path.display()))?;
        let dir = parent_dir(final_path);
        anyhow::ensure!(dir.is_dir(), "the directory {} does not exist", dir.display());
        let path = dir.join(format!(".{}.partial", name.to_string_lossy()));
        let partial = Partial { path, kept: false };
        partial.remove();
        Ok(partial)
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        for companion in sqlite_companions(&self.path) {
            let _ = std::fs::remove_file(companion);
        }
    }

    /// Renames the checked copy to `final_path` and syncs the directory, so the new name
    /// survives a power cut.
    fn rename_to(mut self, final_path: &Path) -> anyhow::Result<()> {
        std::fs::File::open(&self.path).and_then(|file| file.sync_all())?;
        std::fs::rename(&self.path, final_path)
            .with_context(|| format!("renaming {} to {}", self.path.display(), final_path.display()))?;
        self.kept = true;
        std::fs::File::open(parent_dir(final_path)).and_then(|dir| dir.sync_all())?;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            self.remove();
        }
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Owner-only, whatever the umask (the CLI sets 077, but the copy holds everything).
fn make_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    Ok(())
}

/// What the checks of a copy found.
struct Checked {
    /// `audit trail intact: …`
    verdict: String,
    /// `SEQ:HASH` of the verified head.
    head: String,
    /// Migrations applied to the copy (a restore of an older backup).
    applied: Vec<String>,
}

/// Checks the database file at `path`: SQLite's integrity check, then the migrations (the
/// released ones; pending ones are applied only if `migrate`), then the audit chain with the
/// key in `key_file`, through the engine as `audit verify` does. The verification is itself
/// audited, so the copy ends with the record of its own check.
async fn check_copy(path: &Path, key_file: &Path, migrate: bool) -> anyhow::Result<Checked> {
    let keys = config::read_key_file(key_file)?;
    let checked = path.to_path_buf();
    tokio::task::spawn_blocking(move || sqlite_integrity_check(&checked))
        .await?
        .map_err(|error| anyhow::anyhow!("integrity check failed: {error}"))?;
    let url = format!("sqlite://{}", path.display());
    let store = fangkong_store::Store::open(&url).await.context("opening the copy")?;
    let pending = store.pending_migrations().await;
    store.close().await;
    let pending = pending.map_err(|error| anyhow::anyhow!("migrations check failed: {error}"))?;
    let applied: Vec<String> = pending.iter().map(|m| format!("{:04}_{}", m.version, m.name)).collect();
    if !applied.is_empty() && !migrate {
        bail!(
            "migrations check failed: the database's schema is older than this fangkong's (pending {}); \
             back it up with the fangkong that serves it",
            applied.join(", ")
        );
    }
    let engine = Engine::open(&url, config::engine_config(keys, &Policies::default()))
        .await
        .context("audit check failed: opening the copy with the key file")?;
    let result = engine.verify_audit(&Caller::system("cli:backup")).await;
    engine.shutdown().await;
    let result = result.context("audit check failed")?;
    let verdict = audit::verdict(&result).map_err(|broken| anyhow::anyhow!("audit check failed: {broken}"))?;
    // A clean close checkpoints the WAL into the file and removes it; a WAL left with frames
    // in it would be lost by the rename.
    for companion in sqlite_companions(path) {
        if std::fs::metadata(&companion).is_ok_and(|m| m.len() > 0) && companion.to_string_lossy().ends_with("-wal") {
            bail!("the copy's WAL {} was not checkpointed", companion.display());
        }
        let _ = std::fs::remove_file(companion);
    }
    Ok(Checked { verdict, head: format!("{}:{}", result.head_seq, audit::hex(&result.head_hash)), applied })
}

fn postgres_refusal(command: &str, url: &str) -> ExitCode {
    let (tool, example) = match command {
        "backup" => ("pg_dump", format!("pg_dump --format=custom --file=fangkong.dump '{url}'")),
        _ => ("pg_restore", format!("pg_restore --clean --if-exists --exit-on-error --dbname='{url}' fangkong.dump")),
    };
    eprintln!(
        "error: fangkong {command} copies SQLite databases; for PostgreSQL use {tool}: {example} \
         (or pg_basebackup with WAL archiving for point-in-time recovery; see docs/operations.md)"
    );
    ExitCode::from(2)
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    init_logging("warn")?;
    let (source, dir_key) = match locate(args.db.as_deref(), args.data_dir.as_deref())? {
        Location::Postgres { url } => return Ok(postgres_refusal("backup", &url)),
        Location::Sqlite { path, dir_key } => (path, dir_key),
    };
    let key_file = args
        .key_file
        .or(dir_key)
        .context("no key file: pass --key-file FILE (the database's master key, to verify the copy's audit trail)")?;
    anyhow::ensure!(source.is_file(), "no database at {}", source.display());
    anyhow::ensure!(
        !args.out.exists(),
        "--out {}: the file exists (a backup never replaces a file; choose a new name)",
        args.out.display()
    );
    let partial = Partial::beside(&args.out)?;
    let (from, to) = (source.clone(), partial.path.clone());
    tokio::task::spawn_blocking(move || sqlite_snapshot(&from, &to))
        .await?
        .with_context(|| format!("copying {}", source.display()))?;
    make_private(&partial.path)?;
    let checked = check_copy(&partial.path, &key_file, false)
        .await
        .with_context(|| format!("the copy of {} was refused and removed", source.display()))?;
    let size = std::fs::metadata(&partial.path)?.len();
    partial.rename_to(&args.out)?;
    print_line(&format!("copied {} to {} ({size} bytes)", source.display(), args.out.display()));
    print_line("integrity check: ok; migrations: the released ones");
    print_line(&checked.verdict);
    print_line(&format!("head: {}", checked.head));
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    init_logging("warn")?;
    let (target, dir_key) = match locate(args.db.as_deref(), args.data_dir.as_deref())? {
        Location::Postgres { url } => return Ok(postgres_refusal("restore", &url)),
        Location::Sqlite { path, dir_key } => (path, dir_key),
    };
    anyhow::ensure!(args.from.is_file(), "--from {}: no such file", args.from.display());
    // With --data-dir, the directory's own key, unless one is given (then copied there if
    // the directory has none, so the directory is whole).
    let key_file = match (&args.key_file, &dir_key) {
        (Some(given), _) => given.clone(),
        (None, Some(in_dir)) if in_dir.exists() => in_dir.clone(),
        _ => bail!("no key file: pass --key-file FILE (the master key the backup was made with)"),
    };
    if let (Some(_), Some(in_dir)) = (&args.key_file, &dir_key)
        && in_dir.exists()
        && config::read_key_file(in_dir)?.check_value() != config::read_key_file(&key_file)?.check_value()
    {
        bail!("--key-file {} is not the key in {}", key_file.display(), in_dir.display());
    }
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating --data-dir {}", dir.display()))?;
    }
    let refuse_if_held = |target: &Path| -> anyhow::Result<()> {
        if sqlite_in_use(target).with_context(|| format!("checking whether {} is in use", target.display()))? {
            bail!("{} is in use by a running server: stop it, then restore", target.display());
        }
        Ok(())
    };
    if target.exists() {
        anyhow::ensure!(
            args.force,
            "{} exists: pass --force to replace it (everything in it is lost)",
            target.display()
        );
        refuse_if_held(&target)?;
    }
    let checked_from = args.from.clone();
    tokio::task::spawn_blocking(move || sqlite_integrity_check(&checked_from)).await?.map_err(|error| {
        anyhow::anyhow!("the backup {} was refused: integrity check failed: {error}", args.from.display())
    })?;
    let partial = Partial::beside(&target)?;
    let (from, to) = (args.from.clone(), partial.path.clone());
    tokio::task::spawn_blocking(move || sqlite_snapshot(&from, &to))
        .await?
        .with_context(|| format!("copying {}", args.from.display()))?;
    make_private(&partial.path)?;
    let checked = check_copy(&partial.path, &key_file, true).await.with_context(|| {
        format!("the backup {} was refused; {} was not touched", args.from.display(), target.display())
    })?;
    // A server may have started while the copy was checked.
    refuse_if_held(&target)?;
    // The old database's WAL and index would be replayed into the new file: gone first.
    for companion in sqlite_companions(&target) {
        match std::fs::remove_file(&companion) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error).with_context(|| format!("removing {}", companion.display())),
        }
    }
    partial.rename_to(&target)?;
    if let Some(in_dir) = dir_key.filter(|in_dir| !in_dir.exists()) {
        config::write_key_file(&in_dir, &config::read_key_file(&key_file)?)?;
    }
    print_line(&format!("restored {} into {}", args.from.display(), target.display()));
    for migration in &checked.applied {
        print_line(&format!("applied {migration}"));
    }
    print_line(&checked.verdict);
    print_line(&format!("head: {}", checked.head));
    Ok(ExitCode::SUCCESS)
}
