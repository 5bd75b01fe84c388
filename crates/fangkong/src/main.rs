//! `fangkong`: the one command that runs, prepares and measures a Fangkong deployment.
//!
//! Thin on purpose: it parses arguments and configuration, then calls the server, engine,
//! store and bench crates. Errors end the process with a one-line message on stderr and
//! a non-zero exit code (2 for bad arguments, as clap does; 1 for everything else).

mod config;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use fangkong_engine::Engine;
use fangkong_server::AppState;

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
    /// Run the server with the demo city on a SQLite file in --data-dir.
    Demo(DemoArgs),
    /// Bring the database schema up to date (the server also does this on start).
    Migrate(MigrateArgs),
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
struct DemoArgs {
    /// Directory for the demo database; default: a fresh temporary directory, removed on exit.
    #[arg(long, value_name = "DIR", env = "FANGKONG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", env = "FANGKONG_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: String,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, value_name = "FILTER", env = "FANGKONG_LOG", default_value = "info")]
    log: String,
}

#[derive(Args, Debug)]
struct MigrateArgs {
    /// A TOML configuration file (only its `db` is used).
    #[arg(long, value_name = "FILE", env = "FANGKONG_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DATABASE [default: sqlite://fangkong.db]
    #[arg(long, value_name = "URL", env = "FANGKONG_DB")]
    db: Option<String>,
    /// Only report the schema version and pending migrations; change nothing.
    #[arg(long)]
    status: bool,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Durable single-row and batched inserts per second on SQLite and PostgreSQL.
    Store(BenchStoreArgs),
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
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(anyhow::Error::from(error).context("starting the async runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

fn fail(error: anyhow::Error) -> ExitCode {
    // One line: the context chain joined, as "doing X: because Y".
    let message = error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ");
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args.config)?;
            init_logging(&config.log)?;
            serve(&config.db, &config.listen, Duration::from_secs(config.shutdown_grace_secs), None).await
        }
        Command::Demo(args) => demo(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Bench(BenchCommand::Store(args)) => bench_store(args).await,
    }
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

/// Opens the engine, binds the listener and serves until SIGTERM or Ctrl-C.
async fn serve(db: &str, listen: &str, grace: Duration, banner: Option<&dyn Fn(SocketAddr)>) -> anyhow::Result<()> {
    let address: SocketAddr =
        listen.parse().with_context(|| format!("--listen {listen:?} is not an address like 127.0.0.1:8080"))?;
    let engine =
        Arc::new(Engine::open(db).await.with_context(|| format!("opening {}", fangkong_store::redact_url(db)))?);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            engine.shutdown().await;
            bail!("cannot listen on {address}: {error} (choose another with --listen)");
        }
    };
    let bound = listener.local_addr()?;
    tracing::info!(%bound, store = engine.backend().as_str(), "listening");
    match banner {
        Some(banner) => banner(bound),
        None => print_line(&format!("fangkong listening on http://{bound}/")),
    }
    let router = fangkong_server::router(AppState::new(engine.clone()));
    fangkong_server::serve(listener, router, engine, shutdown_signal(), grace).await?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
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
    let db = format!("sqlite://{}", dir.join("fangkong.db").display());
    let banner = |bound: SocketAddr| {
        print_line(&format!("Fangkong demo: data in {}", dir.display()));
        print_line(&format!("fangkong listening on http://{bound}/"));
        print_line(&format!(
            "Open http://{bound}/ in a browser (API reference: http://{bound}/api/docs/). Ctrl-C stops."
        ));
    };
    serve(&db, &args.listen, Duration::from_secs(config::DEFAULT_SHUTDOWN_GRACE_SECS), Some(&banner)).await
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let config = Config::load(&ConfigArgs { config: args.config, db: args.db, ..ConfigArgs::default() })?;
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

/// Lines meant for the person or script that started the command go to stdout.
#[allow(clippy::print_stdout)]
fn print_line(line: &str) {
    println!("{line}");
}
