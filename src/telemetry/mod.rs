//! Operational signals shared by every layer: Prometheus metric names (`metrics`) and request
//! ids (`request_id`). A leaf module: it depends on nothing else in the crate, so `grpc`,
//! `http`, `storage` and `providers` may all record into it.

pub mod metrics;
pub mod request_id;
