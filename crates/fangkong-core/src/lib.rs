//! Fangkong's domain core: the rules of the prevention and control system as pure code.
//!
//! Nothing in this crate does IO, reads a clock or draws a random number: time and
//! randomness arrive as parameters, so every rule can be tested with plain values and the
//! same rules run in the server, the simulator and the benchmarks. A test
//! (`tests/no_io.rs`) keeps it that way.
//!
//! Core types are deliberately not `Serialize`: the server owns its wire types and the
//! store owns its row types, each converting explicitly at its edge.

pub mod audit;
pub mod auth;
pub mod avl;
pub mod codes;
pub mod dispatch;
pub mod documents;
pub mod event;
pub mod forces;
pub mod jurisdiction;
pub mod keys;
pub mod registry;
pub mod text;
pub mod time;

pub use fangkong_geo::LatLon;
