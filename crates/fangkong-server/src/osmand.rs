//! The OsmAnd tracker protocol, as Traccar speaks it, on a port of its own (default 5055):
//! the Traccar Client app and the many devices that report to Traccar work unchanged.
//!
//! A report is an HTTP request (any path, GET or POST) whose parameters are in the query
//! string, or — when the query is empty — in a form body, or the JSON body of newer
//! clients. Parameters: `id`/`deviceid`; `lat`+`lon` or `location=lat,lon`; `timestamp` as
//! Unix seconds or milliseconds, ISO 8601, or `yyyy-MM-dd HH:mm:ss` (UTC); `speed` in knots;
//! `bearing`/`heading`; `altitude`; `accuracy`; `hdop`; `batt`; `valid`; `alarm`; anything
//! else is kept as an attribute.
//!
//! Answers: `200` with an empty body for a fix taken (a fix the screen refused is taken too,
//! and recorded with its reason, which the `x-fangkong-refused` header names: resending it
//! would not help); `400` naming the bad parameter; `403` for an unknown or revoked device;
//! `503` with `Retry-After` when the history is behind. The body of an error is one line of
//! text: trackers show it, if anything.
//!
//! There is no credential in the protocol: whoever knows a tracker's id can report for it.
//! Expose this port only to the network the trackers use (see `docs/operations.md`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fangkong_core::avl::{Fix, MPS_PER_KNOT};
use fangkong_core::time::Timestamp;
use fangkong_engine::avl::Ingested;
use fangkong_engine::{Engine, EngineError};
use fangkong_geo::LatLon;
use serde_json::Value;

/// The largest report body taken (a JSON batch of a few hundred fixes).
const BODY_LIMIT: usize = 1024 * 1024;

/// Why a report could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ReportError {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> ReportError {
    ReportError { field: field.into(), message: message.into() }
}

/// One report: which device, and its fix.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub device: String,
    pub fix: Fix,
}

fn number(field: &str, value: &str) -> Result<f64, ReportError> {
    match value.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err(bad(field, format!("{value:?} is not a number"))),
    }
}

fn in_range(field: &str, value: f64, range: std::ops::RangeInclusive<f64>) -> Result<f64, ReportError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(bad(field, format!("{value} is outside {}…{}", range.start(), range.end())))
    }
}

/// `timestamp` in any of the forms clients send.
pub fn parse_timestamp(value: &str) -> Result<Timestamp, ReportError> {
    let value = value.trim();
    if let Ok(number) = value.parse::<f64>() {
        if !number.is_finite() || number < 0.0 {
            return Err(bad("timestamp", format!("{value:?} is not a time")));
        }
        // Seconds up to 2038-01-19 (i32::MAX), milliseconds beyond: Traccar's rule.
        let millis = if number < f64::from(i32::MAX) { number * 1000.0 } else { number };
        return Ok(Timestamp::from_millis(millis.round() as i64));
    }
    let parsed = if value.contains('T') {
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Iso8601::DEFAULT)
            .or_else(|_| time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339))
            .or_else(|_| {
                // ISO 8601 without an offset: UTC.
                let format = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
                );
                time::PrimitiveDateTime::parse(value, &format).map(time::PrimitiveDateTime::assume_utc)
            })
    } else {
        let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        time::PrimitiveDateTime::parse(value, &format).map(time::PrimitiveDateTime::assume_utc)
    };
    match parsed {
        Ok(at) => Ok(Timestamp::from_millis((at.unix_timestamp_nanos() / 1_000_000) as i64)),
        Err(_) => Err(bad(
            "timestamp",
            format!("{value:?} is not Unix seconds or milliseconds, ISO 8601, or yyyy-MM-dd HH:mm:ss"),
        )),
    }
}

fn boolean(field: &str, value: &str) -> Result<bool, ReportError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        other => Err(bad(field, format!("{other:?} is not true or false"))),
    }
}

/// A report from `key=value` parameters (query string, form body, or a flat JSON object).
/// `now` is the fix time when the device sent none.
pub fn parse_params<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    now: Timestamp,
) -> Result<Report, ReportError> {
    let mut device = None;
    let (mut lat, mut lon, mut at) = (None, None, None);
    let mut fix = Fix::new(now, LatLon::new(0.0, 0.0).expect("0,0 is a position"));
    for (key, value) in params {
        match key {
            "id" | "deviceid" => {
                let id = value.trim();
                if id.is_empty() {
                    return Err(bad(key, "empty"));
                }
                device = Some(id.to_string());
            }
            "lat" => lat = Some(number("lat", value)?),
            "lon" => lon = Some(number("lon", value)?),
            "location" => {
                let (a, b) = value.split_once(',').ok_or_else(|| bad("location", "expected lat,lon"))?;
                lat = Some(number("location", a)?);
                lon = Some(number("location", b)?);
            }
            "timestamp" => at = Some(parse_timestamp(value)?),
            "speed" => fix.speed_mps = Some(in_range("speed", number("speed", value)?, 0.0..=1_000.0)? * MPS_PER_KNOT),
            "bearing" | "heading" => fix.course_deg = Some(in_range(key, number(key, value)?, 0.0..=360.0)?),
            "altitude" => fix.altitude_m = Some(in_range("altitude", number("altitude", value)?, -1_000.0..=20_000.0)?),
            "accuracy" => fix.accuracy_m = Some(in_range("accuracy", number("accuracy", value)?, 0.0..=1_000_000.0)?),
            "hdop" => fix.hdop = Some(in_range("hdop", number("hdop", value)?, 0.0..=100.0)?),
            "batt" => fix.battery_pct = Some(in_range("batt", number("batt", value)?, 0.0..=100.0)?),
            "valid" => fix.valid = boolean("valid", value)?,
            "alarm" => fix.alarm = Some(value.trim().to_ascii_lowercase()).filter(|a| !a.is_empty()),
            _ if key.is_empty() || key.len() > 64 => {
                return Err(bad("parameter", format!("{key:?} is not a parameter name")));
            }
            _ => fix.attributes.push((key.to_string(), value.chars().take(256).collect())),
        }
    }
    let device = device.ok_or_else(|| bad("id", "missing: every report names its device (id or deviceid)"))?;
    let (lat, lon) = match (lat, lon) {
        (Some(lat), Some(lon)) => (lat, lon),
        _ => return Err(bad("lat", "missing: send lat and lon, or location=lat,lon")),
    };
    fix.point = LatLon::new(lat, lon).map_err(|e| bad(if lat.abs() > 90.0 { "lat" } else { "lon" }, e.to_string()))?;
    if let Some(at) = at {
        fix.fixed_at = at;
    }
    Ok(Report { device, fix })
}

/// Reports from the JSON body of newer clients (the Traccar Client app): `device_id` and
/// `location` (one object or an array), each with `timestamp`, `coords` (`latitude`,
/// `longitude`, `speed` in m/s, `heading`, `altitude`, `accuracy`), `battery` (`level` 0–1,
/// `is_charging`), `is_moving`, `odometer`, `event`, `activity.type`, `extras`. A flat
/// object with the query-string keys is read as parameters.
pub fn parse_json(body: &[u8], now: Timestamp) -> Result<Vec<Report>, ReportError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| bad("body", format!("not JSON: {e}")))?;
    parse_json_value(&value, now)
}

/// [`parse_json`] of an already parsed value.
pub fn parse_json_value(value: &Value, now: Timestamp) -> Result<Vec<Report>, ReportError> {
    let Some(object) = value.as_object() else { return Err(bad("body", "expected a JSON object")) };
    if !object.contains_key("location") {
        let pairs: Vec<(String, String)> =
            object.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect();
        return parse_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now).map(|r| vec![r]);
    }
    let device = object
        .get("device_id")
        .or_else(|| object.get("id"))
        .and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())))
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| bad("device_id", "missing: every report names its device"))?;
    let locations = match &object["location"] {
        Value::Array(items) => items.iter().collect(),
        item @ Value::Object(_) => vec![item],
        _ => return Err(bad("location", "expected an object or an array of objects")),
    };
    if locations.len() > 1_000 {
        return Err(bad("location", "more than 1,000 fixes in one report"));
    }
    locations
        .into_iter()
        .map(|location| json_fix(location, now).map(|fix| Report { device: device.clone(), fix }))
        .collect()
}

fn json_number(value: Option<&Value>, field: &str) -> Result<Option<f64>, ReportError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_f64().filter(|f| f.is_finite()).map(Some).ok_or_else(|| bad(field, "not a number"))
        }
        Some(other) => Err(bad(field, format!("{other} is not a number"))),
    }
}

fn json_fix(location: &Value, now: Timestamp) -> Result<Fix, ReportError> {
    let coords = location.get("coords").ok_or_else(|| bad("coords", "missing"))?;
    let lat = json_number(coords.get("latitude"), "latitude")?.ok_or_else(|| bad("latitude", "missing"))?;
    let lon = json_number(coords.get("longitude"), "longitude")?.ok_or_else(|| bad("longitude", "missing"))?;
    let point = LatLon::new(lat, lon).map_err(|e| bad("coords", e.to_string()))?;
    let at = match location.get("timestamp") {
        None | Some(Value::Null) => now,
        Some(Value::String(text)) => parse_timestamp(text)?,
        Some(Value::Number(n)) => parse_timestamp(&n.to_string())?,
        Some(other) => return Err(bad("timestamp", format!("{other} is not a time"))),
    };
    let mut fix = Fix::new(at, point);
    // Negative speed, heading or accuracy mean "unknown" in the geolocation plugin.
    let known = |v: Option<f64>| v.filter(|v| *v >= 0.0);
    fix.speed_mps = known(json_number(coords.get("speed"), "speed")?);
    fix.course_deg = known(json_number(coords.get("heading"), "heading")?).map(|h| h.min(360.0));
    fix.altitude_m = json_number(coords.get("altitude"), "altitude")?;
    fix.accuracy_m = known(json_number(coords.get("accuracy"), "accuracy")?);
    if let Some(battery) = location.get("battery") {
        fix.battery_pct = known(json_number(battery.get("level"), "battery.level")?).map(|l| (l * 100.0).min(100.0));
        if let Some(charging) = battery.get("is_charging").and_then(Value::as_bool) {
            fix.attributes.push(("charge".into(), charging.to_string()));
        }
    }
    for key in ["is_moving", "odometer", "event", "uuid"] {
        if let Some(value) = location.get(key).filter(|v| !v.is_null()) {
            fix.attributes.push((key.into(), value.as_str().map_or_else(|| value.to_string(), str::to_string)));
        }
    }
    if let Some(kind) = location.get("activity").and_then(|a| a.get("type")).and_then(Value::as_str) {
        fix.attributes.push(("activity".into(), kind.into()));
    }
    if let Some(Value::Object(extras)) = location.get("extras") {
        for (key, value) in extras.iter().take(32) {
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
            if key == "alarm" {
                fix.alarm = Some(text.to_ascii_lowercase());
            } else {
                fix.attributes.push((key.clone(), text.chars().take(256).collect()));
            }
        }
    }
    Ok(fix)
}

/// The reports of one HTTP request.
pub fn parse_request(query: Option<&str>, body: &[u8], now: Timestamp) -> Result<Vec<Report>, ReportError> {
    match query.filter(|q| !q.is_empty()) {
        Some(query) => {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            parse_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now).map(|r| vec![r])
        }
        None if matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'[')) => parse_json(body, now),
        None if !body.is_empty() => {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
            parse_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now).map(|r| vec![r])
        }
        None => Err(bad("id", "an empty report: send id, lat and lon")),
    }
}

fn text(status: StatusCode, message: String) -> Response {
    (status, [("content-type", "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

async fn receive(State(engine): State<Arc<Engine>>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let reports = match parse_request(query.as_deref(), &body, engine.now()) {
        Ok(reports) => reports,
        Err(error) => return text(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let mut refused = Vec::new();
    for report in reports {
        match engine.ingest_fix(&report.device, report.fix).await {
            Ok(Ingested::Accepted) => {}
            Ok(Ingested::Rejected(reason)) => refused.push(reason.as_str()),
            Err(error @ (EngineError::UnknownDevice { .. } | EngineError::DeviceRevoked)) => {
                return text(StatusCode::FORBIDDEN, error.to_string());
            }
            Err(error @ EngineError::Invalid { .. }) => return text(StatusCode::FORBIDDEN, error.to_string()),
            Err(EngineError::Overloaded) => {
                let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "overloaded; retry shortly".into());
                response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
                return response;
            }
            Err(error) => {
                tracing::error!(%error, "an OsmAnd report could not be taken");
                return text(StatusCode::SERVICE_UNAVAILABLE, "unavailable; retry shortly".into());
            }
        }
    }
    let mut response = StatusCode::OK.into_response();
    if !refused.is_empty()
        && let Ok(value) = HeaderValue::from_str(&refused.join(","))
    {
        response.headers_mut().insert("x-fangkong-refused", value);
    }
    response
}

/// The OsmAnd listener's routes: every path, GET and POST.
pub fn router(engine: Arc<Engine>) -> Router {
    use axum::routing::any;
    Router::new()
        .route("/", any(receive))
        .route("/{*path}", any(receive))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(engine)
}

#[cfg(test)]
mod tests;
