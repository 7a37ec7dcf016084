//! Test helpers: server start-up, databases, fakes of the carrier APIs.
#![allow(dead_code)]

pub(crate) mod fake_nxcloud;
pub(crate) mod md5;
