//! Carrier adapters: one module per carrier, each implementing `domain::provider::Carrier`.
//! They speak HTTP (reqwest) and the carrier's wire format; nothing else in the crate does.

pub mod aliyun;
pub mod aliyun_push;
pub mod nxcloud;
pub mod nxcloud_push;
mod push_fields;
