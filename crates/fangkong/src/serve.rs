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
pub async fn open_engine(db: &str, engine_config: EngineConfig) -> anyhow::Result<Arc<Engine>> {
    Engine::open(db, engine_config).await.with_context(|| format!("opening {}", fangkong_store::redact_url(db)))
}

/// Serves `config` until a signal. `engine` is opened from the config unless given;
/// `banner` replaces the default "listening" line.
pub async fn serve(config: &Config, engine: Option<Arc<Engine>>) -> anyhow::Result<()> {
    serve_with_banner(config, engine, None).await
}

pub async fn serve_with_banner(
    config: &Config,
    engine: Option<Arc<Engine>>,
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
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            engine.shutdown().await;
            bail!("cannot listen on {address}: {error} (choose another with --listen)");
        }
    };
    let osmand = match &config.osmand_listen {
        None => None,
        Some(osmand) => {
            let address: SocketAddr = osmand
                .parse()
                .with_context(|| format!("--osmand-listen {osmand:?} is not an address like 0.0.0.0:5055 (or off)"))?;
            match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    engine.shutdown().await;
                    bail!(
                        "cannot listen for trackers on {address}: {error} (choose another with --osmand-listen, or off)"
                    );
                }
            }
        }
    };
    let mqtt = config.mqtt_url.as_ref().map(|url| fangkong_server::mqtt::MqttOptions {
        url: url.clone(),
        topic: config.mqtt_topic.clone(),
        client_id: format!("fangkong-{}", std::process::id()),
    });
    if let Some(options) = &mqtt {
        fangkong_server::mqtt::parse_url(&options.url).map_err(|error| anyhow::anyhow!("--mqtt-url: {error}"))?;
    }
    let bound = listener.local_addr()?;
    tracing::info!(%bound, store = engine.backend().as_str(), "listening");
    if let Some(osmand) = &osmand {
        let address = osmand.local_addr()?;
        tracing::info!(%address, "listening for OsmAnd trackers");
        print_line(&format!("trackers (OsmAnd protocol): http://{address}/?id=…&lat=…&lon=…"));
    }
    match banner {
        Some(banner) => banner(bound),
        None => print_line(&format!("fangkong listening on http://{bound}/")),
    }
    let state = AppState::new(engine.clone())
        .with_map_style_url(config.map_style_url.clone())
        .with_metrics_token(config.metrics_token.clone());
    let router = fangkong_server::router(state);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let edges = fangkong_server::Edges { osmand, mqtt, ..Default::default() };
    fangkong_server::serve_with_edges(listener, edges, router, engine, shutdown_signal(), grace).await?;
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
