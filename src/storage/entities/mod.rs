//! sea-orm entities, one per table. Times are epoch milliseconds (i64) so that expiry
//! comparisons are plain integer comparisons on every backend.

pub mod binding;
pub mod event;
pub mod event_seq;
pub mod number;
pub mod pool;
pub mod route;
