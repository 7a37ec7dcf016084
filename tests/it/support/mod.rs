//! Test helpers: server start-up, databases, fakes of the carrier APIs.
#![allow(dead_code)]

pub mod db;
pub mod fake_aliyun;
pub mod fake_nxcloud;
pub mod fixtures;
pub mod logs;
pub mod md5;
pub mod proxy;
pub mod server;

pub use db::TestDb;
pub use server::TestServer;
