//! Fangkong's benchmarks: programs, not timed tests.
//!
//! Each benchmark prints one JSON object per line on stdout:
//! `{"bench":…, "metric":…, "value":…, "unit":…}` and, where a peer was measured in the
//! same run, `"peer":…, "peer_value":…, "ratio":…` with `ratio > 1` meaning Fangkong is
//! better (for rates ours ÷ theirs, for latencies theirs ÷ ours). Figures are medians over
//! rounds, because the machines we run on are shared and noisy. Notes for people go to
//! stderr.
//!
//! Run them with `fangkong bench NAME`; `fangkong bench --help` lists them.

pub mod avl;
pub mod avl_peer;
pub mod dispatch;
pub mod geo;
pub mod registry;
pub mod report;
pub mod reports;
pub mod store;
mod store_peer;
