//! Positions from an MQTT broker: vehicle trackers (and gateways) publish JSON to a topic;
//! Fangkong subscribes and takes each message as a report.
//!
//! A message is the OsmAnd JSON form (`device_id` + `location`) or a flat object with the
//! OsmAnd parameter names (`{"id":…, "lat":…, "lon":…, "timestamp":…, "speed": knots…}`).
//! Without an `id`, the device is the topic's last level (`fangkong/positions/T123`). Bad
//! messages and unknown devices are counted and logged (at most once a minute per kind):
//! MQTT has no answer to send them in. The broker's own authentication and topic ACLs
//! decide who may publish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fangkong_engine::Engine;
use fangkong_engine::avl::Ingested;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions as ClientOptions, QoS};
use serde_json::Value;
use tokio::sync::watch;

use crate::osmand::parse_json_value;

/// Where to subscribe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttOptions {
    /// `mqtt://[user[:password]@]host[:port]` (port 1883 by default).
    pub url: String,
    /// The topic filter, e.g. `fangkong/positions/#`.
    pub topic: String,
    pub client_id: String,
}

/// What the subscriber has seen, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct MqttCounters {
    pub messages: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub bad: AtomicU64,
    pub connected: AtomicU64,
}

/// A broker's address and the credentials to present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    /// User and password.
    pub credentials: Option<(String, String)>,
}

/// Splits an MQTT URL into host, port and credentials.
pub fn parse_url(url: &str) -> Result<Broker, String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("{url:?}: an MQTT URL starts with mqtt:// (TLS brokers are not supported yet)"))?;
    let rest = rest.trim_end_matches('/');
    let (credentials, address) = match rest.rsplit_once('@') {
        Some((credentials, address)) => {
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            (Some((user.to_string(), password.to_string())), address)
        }
        None => (None, rest),
    };
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| format!("{url:?}: bad port {port:?}"))?),
        None => (address, 1883),
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(Broker { host: host.to_string(), port, credentials })
}

/// Subscribes and ingests until `stop` turns true. Reconnects (every 2 s) when the broker
/// goes away.
pub async fn run(
    engine: Arc<Engine>,
    options: MqttOptions,
    counters: Arc<MqttCounters>,
    mut stop: watch::Receiver<bool>,
) {
    let Broker { host, port, credentials } = match parse_url(&options.url) {
        Ok(broker) => broker,
        Err(error) => {
            tracing::error!(%error, "MQTT subscriber not started");
            return;
        }
    };
    let mut client_options = ClientOptions::new(options.client_id.clone(), host, port);
    client_options.set_keep_alive(Duration::from_secs(30));
    client_options.set_max_packet_size(1 << 20, 1 << 20);
    if let Some((user, password)) = credentials {
        client_options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(client_options, 1_024);
    let mut last_warning = None::<tokio::time::Instant>;
    loop {
        let event = tokio::select! {
            event = events.poll() => event,
            _ = stop.changed() => break,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                counters.connected.fetch_add(1, Ordering::Relaxed);
                tracing::info!(url = %redact(&options.url), topic = %options.topic, "MQTT connected; subscribing");
                if let Err(error) = client.subscribe(options.topic.clone(), QoS::AtLeastOnce).await {
                    tracing::warn!(%error, "MQTT subscribe failed");
                }
            }
            Ok(Event::Incoming(Incoming::Publish(message))) => {
                counters.messages.fetch_add(1, Ordering::Relaxed);
                if let Err(problem) = take(&engine, &message.topic, &message.payload, &counters).await {
                    counters.bad.fetch_add(1, Ordering::Relaxed);
                    if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(topic = %message.topic, %problem, "MQTT message refused (further ones this minute not logged)");
                        last_warning = Some(tokio::time::Instant::now());
                    }
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, url = %redact(&options.url), "MQTT connection lost; retrying in 2 s");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.changed() => break,
                }
            }
        }
    }
    let _ = client.disconnect().await;
}

/// One message into the engine.
async fn take(engine: &Engine, topic: &str, payload: &[u8], counters: &MqttCounters) -> Result<(), String> {
    let mut value: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    if let Value::Object(object) = &mut value
        && !["id", "deviceid", "device_id"].iter().any(|key| object.contains_key(*key))
        && let Some(device) = topic.rsplit('/').next().filter(|d| !d.is_empty())
    {
        let key = if object.contains_key("location") { "device_id" } else { "id" };
        object.insert(key.into(), Value::String(device.to_string()));
    }
    let reports = parse_json_value(&value, engine.now()).map_err(|e| e.to_string())?;
    for report in reports {
        match engine.ingest_fix(&report.device, report.fix).await {
            Ok(Ingested::Accepted) => counters.accepted.fetch_add(1, Ordering::Relaxed),
            Ok(Ingested::Rejected(_)) => counters.refused.fetch_add(1, Ordering::Relaxed),
            Err(error) => return Err(format!("device {}: {error}", report.device)),
        };
    }
    Ok(())
}

fn redact(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| rest.rsplit_once('@').map(|(_, host)| (scheme, host))) {
        Some((scheme, host)) => format!("{scheme}://***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let broker = |host: &str, port, credentials: Option<(&str, &str)>| Broker {
            host: host.into(),
            port,
            credentials: credentials.map(|(u, p)| (u.into(), p.into())),
        };
        assert_eq!(parse_url("mqtt://127.0.0.1:1883"), Ok(broker("127.0.0.1", 1883, None)));
        assert_eq!(parse_url("mqtt://broker.internal"), Ok(broker("broker.internal", 1883, None)));
        assert_eq!(parse_url("tcp://fk:secret@mq:2883/"), Ok(broker("mq", 2883, Some(("fk", "secret")))));
        assert!(parse_url("mqtts://mq").is_err());
        assert!(parse_url("mqtt://mq:port").is_err());
        assert!(parse_url("mqtt://").is_err());
        assert_eq!(redact("mqtt://fk:secret@mq:1883"), "mqtt://***@mq:1883");
    }
}
