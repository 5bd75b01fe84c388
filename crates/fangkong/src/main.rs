//! `fangkong`: the one command that runs, prepares, administers and measures a Fangkong
//! deployment.
//!
//! Thin on purpose: it parses arguments and configuration, then calls the server, engine,
//! store and bench crates. Errors end the process with a one-line message on stderr and
//! a non-zero exit code (2 for bad arguments, as clap does; 1 for everything else).

/// mimalloc rather than the system allocator: the import pipeline allocates records on one
/// thread and frees them on the store's writer thread, which glibc's arenas handle slowly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod accounts;
mod audit;
mod backup;
mod config;
mod demo;
mod import;
mod serve;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigArgs};

#[derive(Parser, Debug)]
#[command(name = "fangkong", version, about = "Fangkong (防控): the public-safety prevention and control platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server on the database given by --db (or the config file, or FANGKONG_DB).
    Serve(ServeArgs),
    /// Run the server with the demo city and one account per role, on SQLite in --data-dir.
    Demo(demo::DemoArgs),
    /// Bring the database schema up to date (the server also does this on start).
    Migrate(MigrateArgs),
    /// Create a new master key file (needed by serve and the account commands).
    Keygen(KeygenArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(accounts::UserCommand),
    /// Manage device credentials (trackers, alarm points, checkpoint terminals).
    #[command(subcommand)]
    Device(accounts::DeviceCommand),
    /// Import official data (boundaries) into the database.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Check the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Copy a SQLite database while the server runs, and check the copy (integrity,
    /// migrations, audit chain); on PostgreSQL, names the pg_dump to run instead.
    Backup(backup::BackupArgs),
    /// Put a backup back after checking it as `backup` does; refuses to replace a database
    /// without --force, and one a running server holds.
    Restore(backup::RestoreArgs),
    /// The synthetic city: generate it at any scale, for benchmarks and imports.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Run a benchmark; prints one JSON object per line.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Args, Debug)]
struct MigrateArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Only report the schema version and pending migrations; change nothing.
    #[arg(long)]
    status: bool,
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Where to write the key (created with mode 0600; an existing file is never replaced).
    file: PathBuf,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Durable single-row and batched inserts per second on SQLite and PostgreSQL.
    Store(BenchStoreArgs),
    /// Point → full jurisdiction chain lookups per second on the full-scale city, beside
    /// PostGIS.
    Geo(BenchGeoArgs),
    /// Tracker positions per second through the pipeline (in process and over the OsmAnd
    /// protocol) with durable history on SQLite, and a unit-day history query.
    Avl(BenchAvlArgs),
    /// The 110 centre: recommendation latency over 50,000 live units beside Redis
    /// GEOSEARCH and PostGIS KNN, durable incident intake on SQLite (and PostgreSQL), and
    /// HTTP intake under a load generator.
    Dispatch(BenchDispatchArgs),
    /// The housing registry: the synthetic residents (20 M at scale 1) and rental units
    /// imported from CSV into SQLite (rows/s, peak memory), audited identity-number matches
    /// through the engine (p50/p99), beside PostgreSQL COPY and an indexed query with its
    /// audit row committed.
    Registry(BenchRegistryArgs),
    /// Reports under load (issue 24): the coverage report over a year of beat presence for
    /// the demo's force (per district, 31 days and 24 h) beside PostgreSQL, and HTTP intake
    /// while coverage reports and a residents export run, with /healthz polled.
    Reports(BenchReportsArgs),
}

#[derive(Args, Debug)]
struct BenchReportsArgs {
    /// PostgreSQL to answer the same coverage report beside (the bench uses and drops a
    /// schema of its own).
    #[arg(long, value_name = "URL", env = "FANGKONG_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Share of the plan's 50,000-strong force (the demo's default).
    #[arg(long, default_value_t = 0.05)]
    force_scale: f64,
    /// Days of roster and beat presence.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Timed runs of each district's report.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Seconds of each intake phase (alone, then under reports).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent intake clients.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Directory for the SQLite file; default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    sqlite_dir: Option<PathBuf>,
    /// A tiny run that exercises every path (for smoke tests, not for figures).
    #[arg(long)]
    quick: bool,
}

#[derive(Args, Debug)]
struct BenchRegistryArgs {
    /// PostgreSQL to measure beside (the bench uses and drops a schema of its own).
    #[arg(long, value_name = "URL", env = "FANGKONG_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Size of the city: 1.0 is 20 M residents.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Identity numbers matched through the engine (each match commits its audit record).
    #[arg(long, default_value_t = 10_000)]
    lookups: usize,
    /// Directory for the CSV files and the SQLite file (~10 GB at scale 1); default: the
    /// system's temporary directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A tiny run that exercises every path (for smoke tests, not for figures).
    #[arg(long)]
    quick: bool,
}

#[derive(Args, Debug)]
struct BenchDispatchArgs {
    /// A PostgreSQL (with PostGIS) to measure beside: KNN peer and intake on PostgreSQL.
    #[arg(long, value_name = "URL", env = "FANGKONG_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// The Redis to measure GEOSEARCH on, or `off`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6379")]
    redis: String,
    /// Live units.
    #[arg(long, default_value_t = 50_000)]
    units: usize,
    /// Rounds per figure; the median (or the percentile over all rounds) is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Directory for the SQLite file; default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    sqlite_dir: Option<PathBuf>,
    /// A tiny run that exercises every path (for smoke tests, not for figures).
    #[arg(long)]
    quick: bool,
}

#[derive(Args, Debug)]
struct BenchAvlArgs {
    /// PostgreSQL for the reference receiver measured beside the OsmAnd listener (the bench
    /// uses and drops a schema of its own).
    #[arg(long, value_name = "URL", env = "FANGKONG_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Directory for the SQLite files; default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    sqlite_dir: Option<PathBuf>,
    /// Rounds per figure; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Rows in the history table for the query figure.
    #[arg(long, default_value_t = 100_000_000)]
    history_rows: u64,
    /// A tiny run that exercises every path (for smoke tests, not for figures).
    #[arg(long)]
    quick: bool,
}

#[derive(Args, Debug)]
struct BenchGeoArgs {
    /// PostgreSQL with PostGIS to measure in the same run (the bench uses and drops a schema
    /// of its own).
    #[arg(long, value_name = "URL", env = "FANGKONG_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Rounds per figure; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Points per round.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..))]
    points: u32,
    /// Seed of the city and the points.
    #[arg(long, default_value_t = 2003)]
    seed: u64,
    /// A tiny run that exercises every path (for smoke tests, not for figures).
    #[arg(long)]
    quick: bool,
}

#[derive(Args, Debug)]
struct BenchStoreArgs {
    /// PostgreSQL to measure in the same run (the bench uses and drops a schema of its own).
    #[arg(long, value_name = "URL", env = "FANGKONG_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Directory for the SQLite file; default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    sqlite_dir: Option<PathBuf>,
    /// Rounds per figure; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// A tiny run that exercises every path (for smoke tests, not for figures).
    #[arg(long)]
    quick: bool,
}

fn main() -> ExitCode {
    private_files();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(anyhow::Error::from(error).context("starting the async runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => fail(error),
    }
}

/// Every file this process creates — the SQLite database and its `-wal`/`-shm`, the demo's
/// import files, backups — is readable by its owner only, whatever the caller's umask: they
/// hold sealed personal data, the audit trail and password hashes (the key file is written
/// 0600 on its own). Set before any thread starts, so no file is made under the old mask.
fn private_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

fn fail(error: anyhow::Error) -> ExitCode {
    // One line: the context chain joined, as "doing X: because Y".
    let message = error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ");
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args.config)?;
            init_logging(&config.log)?;
            serve::serve(&config, None).await?;
        }
        Command::Demo(args) => demo::demo(args).await?,
        Command::Migrate(args) => migrate(args).await?,
        Command::Keygen(args) => keygen(&args.file)?,
        Command::User(command) => Box::pin(accounts::user(command)).await?,
        Command::Device(command) => Box::pin(accounts::device(command)).await?,
        Command::Audit(command) => return audit::audit(command).await,
        Command::Backup(args) => return backup::backup(args).await,
        Command::Restore(args) => return backup::restore(args).await,
        Command::Import(command) => return import::import(command).await,
        Command::Sim(command) => sim::sim(command)?,
        Command::Bench(BenchCommand::Store(args)) => bench_store(args).await?,
        Command::Bench(BenchCommand::Geo(args)) => bench_geo(args).await?,
        Command::Bench(BenchCommand::Avl(args)) => bench_avl(args).await?,
        Command::Bench(BenchCommand::Dispatch(args)) => Box::pin(bench_dispatch(args)).await?,
        Command::Bench(BenchCommand::Registry(args)) => Box::pin(bench_registry(args)).await?,
        Command::Bench(BenchCommand::Reports(args)) => Box::pin(bench_reports(args)).await?,
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn init_logging(filter: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    init_logging(&config.log)?;
    let shown = fangkong_store::redact_url(&config.db);
    let store = fangkong_store::Store::open(&config.db).await.with_context(|| format!("opening {shown}"))?;
    let result = if args.status {
        store.pending_migrations().await.map(|pending| {
            if pending.is_empty() {
                print_line(&format!("{shown}: schema is up to date"));
            }
            for migration in pending {
                print_line(&format!("{shown}: pending {:04}_{}", migration.version, migration.name));
            }
        })
    } else {
        store.migrate().await.map(|report| {
            for (version, name) in &report.applied {
                print_line(&format!("applied {version:04}_{name}"));
            }
            print_line(&format!("{shown}: schema version {}", report.version));
        })
    };
    store.close().await;
    result.with_context(|| format!("migrating {shown}"))
}

fn keygen(file: &std::path::Path) -> anyhow::Result<()> {
    let keys = fangkong_engine::keys::KeyRing::generate();
    config::write_key_file(file, &keys)?;
    print_line(&format!("wrote a new key to {} (check value {})", file.display(), keys.check_value()));
    print_line("keep it secret, and back it up apart from the database");
    Ok(())
}

async fn bench_store(args: BenchStoreArgs) -> anyhow::Result<()> {
    let mut options = if args.quick { fangkong_bench::store::StoreBenchOptions::quick() } else { Default::default() };
    if !args.quick {
        options.rounds = args.rounds as usize;
    }
    options.postgres_url = args.postgres;
    options.sqlite_dir = args.sqlite_dir;
    let mut stdout = std::io::stdout().lock();
    fangkong_bench::store::run(&options, &mut stdout).await?;
    Ok(())
}

async fn bench_geo(args: BenchGeoArgs) -> anyhow::Result<()> {
    let mut options = if args.quick { fangkong_bench::geo::GeoBenchOptions::quick() } else { Default::default() };
    if !args.quick {
        options.rounds = args.rounds as usize;
        options.points = args.points as usize;
    }
    options.seed = args.seed;
    options.postgres_url = args.postgres;
    let mut stdout = std::io::stdout().lock();
    fangkong_bench::geo::run(&options, &mut stdout).await
}

async fn bench_avl(args: BenchAvlArgs) -> anyhow::Result<()> {
    let mut options = if args.quick { fangkong_bench::avl::AvlBenchOptions::quick() } else { Default::default() };
    if !args.quick {
        options.rounds = args.rounds as usize;
        options.history_rows = args.history_rows;
    }
    options.sqlite_dir = args.sqlite_dir;
    options.postgres_url = args.postgres;
    let mut stdout = std::io::stdout().lock();
    fangkong_bench::avl::run(&options, &mut stdout).await
}

async fn bench_dispatch(args: BenchDispatchArgs) -> anyhow::Result<()> {
    use fangkong_bench::dispatch::DispatchBenchOptions;
    let mut options = if args.quick { DispatchBenchOptions::quick() } else { DispatchBenchOptions::default() };
    if !args.quick {
        options.rounds = args.rounds as usize;
        options.units = args.units.max(5);
    }
    options.sqlite_dir = args.sqlite_dir;
    options.postgres_url = args.postgres;
    options.redis_address = (args.redis != "off").then_some(args.redis);
    let mut stdout = std::io::stdout().lock();
    fangkong_bench::dispatch::run(&options, &mut stdout).await
}

async fn bench_registry(args: BenchRegistryArgs) -> anyhow::Result<()> {
    use fangkong_bench::registry::RegistryBenchOptions;
    // The store's lines say what the writer did; the engine's import line, what the reading
    // thread (parse, checks, sealing) cost.
    init_logging("warn,fangkong_store=info,fangkong_engine::registry=info")?;
    let mut options = if args.quick { RegistryBenchOptions::quick() } else { RegistryBenchOptions::default() };
    if !args.quick {
        anyhow::ensure!(args.scale > 0.0 && args.scale <= 2.0, "--scale must be in (0, 2]");
        options.scale = args.scale;
        options.lookups = args.lookups.max(100);
    }
    options.postgres_url = args.postgres;
    options.dir = args.dir;
    let mut stdout = std::io::stdout().lock();
    fangkong_bench::registry::run(&options, &mut stdout).await
}

async fn bench_reports(args: BenchReportsArgs) -> anyhow::Result<()> {
    use fangkong_bench::reports::ReportsBenchOptions;
    let mut options = if args.quick { ReportsBenchOptions::quick() } else { ReportsBenchOptions::default() };
    if !args.quick {
        anyhow::ensure!(args.force_scale > 0.0 && args.force_scale <= 1.0, "--force-scale must be in (0, 1]");
        anyhow::ensure!((1..=3_650).contains(&args.days), "--days must be 1–3,650");
        anyhow::ensure!((1..=3_600).contains(&args.seconds), "--seconds must be 1–3,600");
        anyhow::ensure!((1..=1_000).contains(&args.clients), "--clients must be 1–1,000");
        options.force_scale = args.force_scale;
        options.days = i64::from(args.days);
        options.runs = args.runs as usize;
        options.seconds = args.seconds;
        options.clients = args.clients;
    }
    options.sqlite_dir = args.sqlite_dir;
    options.postgres_url = args.postgres;
    let mut stdout = std::io::stdout().lock();
    fangkong_bench::reports::run(&options, &mut stdout).await
}

/// Lines meant for the person or script that started the command go to stdout.
#[allow(clippy::print_stdout)]
pub(crate) fn print_line(line: &str) {
    println!("{line}");
}
