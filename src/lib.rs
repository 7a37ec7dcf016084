//! pns-gateway: a privacy-number (number masking) gateway.
//!
//! Layers point one way: `grpc` (transport) -> `events` (fan-out) -> `domain` <- `storage`.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod http;
pub mod providers;
pub mod storage;
pub mod telemetry;
