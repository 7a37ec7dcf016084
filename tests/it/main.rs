#![allow(unreachable_pub)]
//! One integration-test binary: a real server on port 0, the generated client, a fresh
//! database per test (SQLite by default; PostgreSQL when `PNS_TEST_POSTGRES_URL` is set, MySQL /
//! MariaDB when `PNS_TEST_MYSQL_URL` is).

mod aliyun_adapter;
mod auth;
mod axn;
mod calls;
mod caps;
mod carriers;
mod check;
mod cli;
mod concurrency;
mod corruption;
mod crash;
mod events;
mod hostile_grpc;
mod keys;
mod lifecycle;
mod nxcloud_adapter;
mod observability;
mod outage;
mod pools;
mod preload;
mod readme;
mod retention;
mod route_index;
mod server;
mod support;
mod tls;
mod webhooks;
mod write_path;
mod xyb;
