//! Transport: generated code, pb <-> domain conversions, error mapping, service impls.

pub mod binding_service;
mod call_convert;
pub mod call_service;
mod convert;
pub mod pool_service;
pub mod status;
mod watch;

/// Generated `pns.v1` code and its encoded descriptor set (for reflection).
pub mod pb {
    #![allow(unreachable_pub, clippy::all)]
    tonic::include_proto!("pns.v1");

    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/pns_descriptor.bin"));
}

/// Metadata key naming the tenant that owns `customer_bind_id`s; absent = "default".
pub const TENANT_HEADER: &str = "x-pns-tenant";

pub(crate) fn tenant<T>(req: &tonic::Request<T>) -> String {
    req.metadata()
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_owned()
}
