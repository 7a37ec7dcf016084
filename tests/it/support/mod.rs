//! Test helpers: server start-up, databases, fakes of the carrier APIs.
#![allow(dead_code)]
pub mod fake_aliyun;
