//! One error enum for the domain; `grpc::status` maps every variant to a gRPC status exhaustively.
//!
//! Messages never grow with client input: every variant that carries client text prints it
//! through [`echo`] (at most 64 characters), and an invalid request lists at most
//! [`MAX_REPORTED_VIOLATIONS`] violations.

use super::text::echo;

/// Most violations an error lists (message and `BadRequest`); the rest are counted. A request
/// can hold 10 000 numbers, each wrong: listing them all would overflow a client's 16 KiB
/// header limit and hide the answer.
pub const MAX_REPORTED_VIOLATIONS: usize = 16;

/// One invalid field: the proto field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Stable machine-readable reasons (carried in `google.rpc.ErrorInfo.reason`).
pub mod reason {
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    pub const MOBILE_NUMBER_ILLEGAL: &str = "MOBILE_NUMBER_ILLEGAL";
    pub const EXPIRE_DATE_ILLEGAL: &str = "EXPIRE_DATE_ILLEGAL";
    pub const EXTENSION_ILLEGAL: &str = "EXTENSION_ILLEGAL";
    pub const POOL_NOT_FOUND: &str = "POOL_NOT_FOUND";
    pub const POOL_ALREADY_EXISTS: &str = "POOL_ALREADY_EXISTS";
    pub const NUMBER_NOT_FOUND: &str = "NUMBER_NOT_FOUND";
    pub const NUMBER_IN_OTHER_POOL: &str = "NUMBER_IN_OTHER_POOL";
    pub const NUMBER_NOT_AVAILABLE: &str = "NUMBER_NOT_AVAILABLE";
    pub const BINDING_NOT_FOUND: &str = "BINDING_NOT_FOUND";
    pub const NO_AVAILABLE_NUMBER: &str = "NO_AVAILABLE_NUMBER";
    pub const NUMBER_LOCKED: &str = "NUMBER_LOCKED";
    pub const BIND_CONFLICT: &str = "BIND_CONFLICT";
    pub const CUSTOMER_BIND_ID_CONFLICT: &str = "CUSTOMER_BIND_ID_CONFLICT";
    pub const BINDING_ENDED: &str = "BINDING_ENDED";
    pub const PROVIDER_NOT_SUPPORTED: &str = "PROVIDER_NOT_SUPPORTED";
    pub const INTERNAL: &str = "INTERNAL";
    pub const CALL_NOT_FOUND: &str = "CALL_NOT_FOUND";
    pub const PROVIDER_REJECTED: &str = "PROVIDER_REJECTED";
    pub const PROVIDER_THROTTLED: &str = "PROVIDER_THROTTLED";
    pub const PROVIDER_UNAVAILABLE: &str = "PROVIDER_UNAVAILABLE";
    pub const PROVIDER_CONFIGURATION: &str = "PROVIDER_CONFIGURATION";
    pub const PROVIDER_PERMISSION_DENIED: &str = "PROVIDER_PERMISSION_DENIED";
    pub const UPSTREAM_OUTCOME_UNKNOWN: &str = "UPSTREAM_OUTCOME_UNKNOWN";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const POOL_NOT_ALLOWED: &str = "POOL_NOT_ALLOWED";
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Bad input; `reason` is the most specific reason of the violations.
    #[error("invalid argument: {}", list_violations(violations))]
    InvalidArgument {
        reason: &'static str,
        violations: Vec<FieldViolation>,
    },
    #[error("pool {:?} not found", echo(.0))]
    PoolNotFound(String),
    #[error("pool {:?} already exists", echo(.0))]
    PoolAlreadyExists(String),
    #[error("binding not found")]
    BindingNotFound,
    /// A referenced virtual number is not in the pool (or in another pool).
    #[error("{message}")]
    NumberNotFound {
        reason: &'static str,
        message: String,
    },
    /// The pool has no number that satisfies the request.
    #[error("no available number in pool {:?}{detail}", echo(pool))]
    NoAvailableNumber { pool: String, detail: String },
    /// The wanted number is locked by an XYB binding, or carries extensions and cannot be locked.
    #[error(
        "number {} is locked by another binding or otherwise in use",
        echo(number)
    )]
    NumberLocked { number: String },
    /// A route (number, caller-or-extension) is already held by another active binding.
    #[error("bind conflict: {0}")]
    BindConflict(String),
    /// `customer_bind_id` was used before with a different payload.
    #[error(
        "customer_bind_id {:?} is already used by a binding with a different payload",
        echo(.0)
    )]
    CustomerBindIdConflict(String),
    /// A request needs a state the system is not in (e.g. updating an ended binding).
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    /// The caller may not do this (e.g. bind in a pool its tenant is not allowed in).
    #[error("{message}")]
    PermissionDenied {
        reason: &'static str,
        message: String,
    },
    /// The carrier refused or failed; the class decides the status.
    #[error("{0}")]
    Upstream(super::provider::ProviderError),
    /// Storage is temporarily unavailable (connection refused, pool timeout).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected storage failure; logged with its detail, returned generic.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Longest list of violations in a message, in bytes: with the count of the rest after it,
/// the message stays under the 1 KiB the gRPC edge allows.
const MAX_LISTED_BYTES: usize = 800;

/// `field: description; …`: at most [`MAX_REPORTED_VIOLATIONS`] of them and about
/// [`MAX_LISTED_BYTES`], then how many more there are.
fn list_violations(violations: &[FieldViolation]) -> String {
    let mut s = String::new();
    let mut listed = 0;
    for v in violations.iter().take(MAX_REPORTED_VIOLATIONS) {
        let item = format!("{}: {}", v.field, v.description);
        if listed > 0 && s.len() + item.len() > MAX_LISTED_BYTES {
            break;
        }
        if listed > 0 {
            s.push_str("; ");
        }
        s.push_str(&item);
        listed += 1;
    }
    if violations.len() > listed {
        s.push_str(&format!(
            "; and {} more violations",
            violations.len() - listed
        ));
    }
    s
}

impl DomainError {
    pub fn invalid(reason: &'static str, field: &str, description: impl Into<String>) -> Self {
        Self::InvalidArgument {
            reason,
            violations: vec![FieldViolation::new(field, description)],
        }
    }
}

/// Collects every violation of a request so the client sees them all at once.
#[derive(Default)]
pub struct Violations {
    reason: Option<&'static str>,
    list: Vec<FieldViolation>,
}

impl Violations {
    /// Records a violation. The error's reason is the first specific one (e.g.
    /// `EXPIRE_DATE_ILLEGAL`), the generic `INVALID_ARGUMENT` only when no violation has another.
    pub fn add(&mut self, reason: &'static str, field: &str, description: impl Into<String>) {
        match self.reason {
            None => self.reason = Some(reason),
            Some(r) if r == self::reason::INVALID_ARGUMENT => self.reason = Some(reason),
            Some(_) => {}
        }
        self.list.push(FieldViolation::new(field, description));
    }

    /// Records the error of a parse and returns its value, if any.
    pub fn take<T>(
        &mut self,
        reason: &'static str,
        field: &str,
        r: Result<T, String>,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(reason, field, e);
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), DomainError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(DomainError::InvalidArgument {
                reason: self.reason.unwrap_or(reason::INVALID_ARGUMENT),
                violations: self.list,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_reason_is_the_first_specific_one() {
        let mut v = super::Violations::default();
        v.add(super::reason::INVALID_ARGUMENT, "pool_key", "is required");
        v.add(super::reason::EXPIRE_DATE_ILLEGAL, "expire_time", "too far");
        v.add(super::reason::MOBILE_NUMBER_ILLEGAL, "phone_a", "bad");
        match v.finish() {
            Err(super::DomainError::InvalidArgument { reason, violations }) => {
                assert_eq!(reason, super::reason::EXPIRE_DATE_ILLEGAL);
                assert_eq!(violations.len(), 3);
            }
            other => panic!("{other:?}"),
        }
    }

    use super::*;

    #[test]
    fn messages_echo_a_bounded_excerpt_of_client_text() {
        let huge = "k".repeat(3_000_000);
        for e in [
            DomainError::PoolNotFound(huge.clone()),
            DomainError::PoolAlreadyExists(huge.clone()),
            DomainError::CustomerBindIdConflict(huge.clone()),
            DomainError::NumberLocked {
                number: huge.clone(),
            },
            DomainError::NoAvailableNumber {
                pool: huge.clone(),
                detail: String::new(),
            },
        ] {
            assert!(e.to_string().len() < 200, "{}", &e.to_string()[..200]);
        }
        assert_eq!(
            DomainError::PoolNotFound("a\0b".into()).to_string(),
            "pool \"a?b\" not found"
        );
    }

    #[test]
    fn an_invalid_request_lists_a_bounded_number_of_violations() {
        let mut v = Violations::default();
        for i in 0..10_000 {
            v.add(reason::INVALID_ARGUMENT, &format!("numbers[{i}]"), "bad");
        }
        let msg = v.finish().unwrap_err().to_string();
        assert!(msg.ends_with("; and 9984 more violations"), "{msg}");
        assert!(msg.len() < 400, "{msg}");

        // Long descriptions: the list stops early, and the count still follows.
        let mut v = Violations::default();
        for i in 0..20 {
            v.add(reason::INVALID_ARGUMENT, &format!("f{i}"), "d".repeat(250));
        }
        let msg = v.finish().unwrap_err().to_string();
        assert!(msg.len() < 1000, "{}", msg.len());
        assert!(msg.ends_with("; and 17 more violations"), "{msg}");
    }
}
