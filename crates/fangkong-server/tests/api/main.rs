//! The server's API tests. HTTP tests call the router directly (no sockets); the shutdown
//! tests bind a real listener on port 0.

mod support;

mod auth;
mod codes;
mod concurrency;
mod crossing;
mod eido;
mod errors;
mod export;
mod forces;
mod incidents;
mod jurisdictions;
mod matrix;
mod metrics;
mod openapi;
mod positions;
mod shutdown;
mod stream;
mod system;
mod users;
