//! `fangkong serve`: open the engine, bind, serve until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use fangkong_engine::{Engine, EngineConfig};
use fangkong_server::AppState;

use crate::config::Config;
use crate::print_line;

/// Opens the engine on `config.db` with the configured key.
pub async fn open_engine(db: &str, engine_config: EngineConfig) -> anyhow::Result<Engine> {
    Engine::open(db, engine_config).await.with_context(|| format!("opening {}", fangkong_store::redact_url(db)))
}

/// Serves `config` until a signal. `engine` is opened from the config unless given;
/// `banner` replaces the default "listening" line.
pub async fn serve(config: &Config, engine: Option<Engine>) -> anyhow::Result<()> {
    serve_with_banner(config, engine, None).await
}

pub async fn serve_with_banner(
    config: &Config,
    engine: Option<Engine>,
    banner: Option<&dyn Fn(SocketAddr)>,
) -> anyhow::Result<()> {
    let address: SocketAddr = config
        .listen
        .parse()
        .with_context(|| format!("--listen {:?} is not an address like 127.0.0.1:8080", config.listen))?;
    let engine = match engine {
        Some(engine) => engine,
        None => open_engine(&config.db, config.engine()?).await?,
    };
    let engine = Arc::new(engine);
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
    let grace = Duration::from_secs(config.shutdown_grace_secs);
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
