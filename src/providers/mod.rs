//! Carrier adapters: one module per carrier, each implementing `domain::provider::Carrier`.
//! They speak HTTP (reqwest) and the carrier's wire format; nothing else in the crate does.

pub mod aliyun;
pub mod nxcloud;
