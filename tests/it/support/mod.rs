//! Test helpers: server start-up, databases, fakes of the carrier APIs.
#![allow(dead_code)]

pub mod db;
pub mod fixtures;
pub mod server;

pub use db::TestDb;
pub use server::TestServer;
