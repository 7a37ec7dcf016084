//! The product's vocabulary, parsed once at the edge: phone numbers, extensions, modes,
//! strategies, validated bind commands and the one error enum every layer maps from.

pub mod anomaly;
pub mod binder;
pub mod binding;
pub mod call;
pub mod error;
pub mod event;
pub mod event_detail;
pub mod phone;
pub mod pool;
pub mod provider;
pub mod repo;
pub mod text;

pub use binding::*;
pub use call::{CallIn, CallReport, Decision, NoBindingReason};
pub use error::{DomainError, FieldViolation};
pub use event::{Event, EventFilter, NewEvent};
pub use phone::{Extension, PhoneNumber, mask};
pub use pool::*;
pub use repo::Repository;
