//! pns-gateway: a privacy-number (number masking) gateway.
//!
//! Layers point one way: `grpc` (transport) -> `events` (fan-out) -> `domain` <- `storage`.
//! `net` is the listeners' front door (connection cap, TLS), feeding both `grpc` and `http`.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod http;
pub mod net;
pub mod providers;
pub mod storage;
pub mod telemetry;
