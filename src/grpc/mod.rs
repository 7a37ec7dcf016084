//! Transport: generated code, pb <-> domain conversions, error mapping, service impls.

pub mod auth;
pub mod binding_service;
mod call_convert;
pub mod call_service;
mod convert;
pub mod deadline;
mod event_convert;
pub mod incoming;
pub mod observe;
pub mod pool_service;
#[cfg(test)]
mod proptest_support;
pub mod status;
pub(crate) mod validate;
mod watch;
pub mod watch_wire;

/// Generated `pns.v1` code and its encoded descriptor set (for reflection).
pub mod pb {
    #![allow(unreachable_pub, clippy::all)]
    tonic::include_proto!("pns.v1");

    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/pns_descriptor.bin"));
}

/// Metadata key naming the tenant a call acts for (open mode and the admin key only; a tenant
/// key may send only its own tenant); absent or empty = "default",
/// otherwise 1–64 characters of `[A-Za-z0-9._-]` (`validate::tenant`), else INVALID_ARGUMENT.
pub const TENANT_HEADER: &str = "x-pns-tenant";
