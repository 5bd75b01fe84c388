//! The JSON-lines output of every benchmark, and the statistics behind the figures.

use std::io::Write;

use serde_json::{Value, json};

/// Whether a bigger value is better (a rate) or a smaller one (a latency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One figure, optionally beside the same figure for a peer measured in the same run.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub bench: &'static str,
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    pub better: Better,
    pub peer: Option<(String, f64)>,
    /// Why no peer was measured, for figures that normally have one (`"peer": null`).
    pub no_peer: Option<String>,
}

impl Figure {
    pub fn new(
        bench: &'static str,
        metric: impl Into<String>,
        value: f64,
        unit: &'static str,
        better: Better,
    ) -> Figure {
        Figure { bench, metric: metric.into(), value, unit, better, peer: None, no_peer: None }
    }

    pub fn with_peer(mut self, peer: impl Into<String>, peer_value: f64) -> Figure {
        self.peer = Some((peer.into(), peer_value));
        self
    }

    /// A figure that has a peer in a full run, printed with `"peer": null` and the reason.
    pub fn without_peer(mut self, reason: impl Into<String>) -> Figure {
        self.no_peer = Some(reason.into());
        self
    }

    /// `> 1` when we are better than the peer.
    pub fn ratio(&self) -> Option<f64> {
        let (_, peer_value) = self.peer.as_ref()?;
        let ratio = match self.better {
            Better::Higher => self.value / peer_value,
            Better::Lower => peer_value / self.value,
        };
        ratio.is_finite().then_some(ratio)
    }

    pub fn to_json(&self) -> Value {
        let mut line = json!({
            "bench": self.bench,
            "metric": self.metric,
            "value": round(self.value),
            "unit": self.unit,
        });
        if let Some((peer, peer_value)) = &self.peer {
            line["peer"] = json!(peer);
            line["peer_value"] = json!(round(*peer_value));
            line["ratio"] = json!(self.ratio().map(|r| (r * 1000.0).round() / 1000.0));
        } else if let Some(reason) = &self.no_peer {
            line["peer"] = Value::Null;
            line["peer_note"] = json!(reason);
        }
        line
    }

    /// Prints the figure as one JSON line and flushes, so a long run shows progress.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{}", self.to_json())?;
        out.flush()
    }
}

/// Three significant decimals are more than any of our measurements can support.
fn round(value: f64) -> f64 {
    if value.abs() >= 100.0 { value.round() } else { (value * 1000.0).round() / 1000.0 }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 }
}

/// The `p`-th percentile (0–100) by the nearest-rank method.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    assert!(!values.is_empty(), "percentile of nothing");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs a peer's client as a C client (`pgbench`, `redis-benchmark`, a libpq program) runs:
/// on a thread of its own with a single-threaded runtime. On the multi-threaded runtime
/// each request is handed between worker threads (the caller, the connection's task),
/// which on a 2-core machine cost more than the loopback round trip: the peer measured so
/// was up to twice as slow as the same requests by hand. Call it from a multi-threaded
/// runtime (it blocks this worker while the peer runs).
pub(crate) fn on_own_thread<T: Send>(
    work: impl std::future::Future<Output = anyhow::Result<T>> + Send,
) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            scope
                .spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(work))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 50.0), 50.0);
        assert_eq!(percentile(&hundred, 99.0), 99.0);
        assert_eq!(percentile(&hundred, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn ratios_say_how_much_better_we_are() {
        let rate = Figure::new("store", "x", 300.0, "rows/s", Better::Higher).with_peer("postgres", 100.0);
        assert_eq!(rate.ratio(), Some(3.0));
        let latency = Figure::new("store", "x", 50.0, "us", Better::Lower).with_peer("redis", 100.0);
        assert_eq!(latency.ratio(), Some(2.0));
        let line = rate.to_json();
        assert_eq!(
            line,
            json!({"bench":"store","metric":"x","value":300.0,"unit":"rows/s","peer":"postgres","peer_value":100.0,"ratio":3.0})
        );
        let alone = Figure::new("store", "y", 1.23456, "ms", Better::Lower).to_json();
        assert_eq!(alone, json!({"bench":"store","metric":"y","value":1.235,"unit":"ms"}));
    }
}
