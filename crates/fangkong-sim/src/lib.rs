//! The synthetic Shenzhen: a deterministic generator of the city and of its activity, for
//! the demo and the benchmarks.
//!
//! Everything here is a function of a seed: the same seed gives the same city and the same
//! day of calls, so a benchmark can be rerun and a failing test replayed. The simulator
//! drives the system through the engine's commands, as a user would; it never writes to
//! the store behind the engine's back.
//!
//! Parameters come from `../shared/data/synthetic-city.md` (copied into each module's
//! documentation where used); figures marked there as estimates are parameters here, not
//! constants.

pub mod calls;
pub mod city;
pub mod live;
pub mod population;
pub mod registry_files;
