//! One error enum for the domain; `grpc::status` maps every variant to a gRPC status exhaustively.

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
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Bad input; `reason` is the most specific reason of the violations.
    #[error("invalid argument: {}", violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))]
    InvalidArgument {
        reason: &'static str,
        violations: Vec<FieldViolation>,
    },
    #[error("pool {0:?} not found")]
    PoolNotFound(String),
    #[error("pool {0:?} already exists")]
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
    #[error("no available number in pool {pool:?}{detail}")]
    NoAvailableNumber { pool: String, detail: String },
    /// The wanted number is locked by an XYB binding, or carries extensions and cannot be locked.
    #[error("number {number} is locked by another binding or otherwise in use")]
    NumberLocked { number: String },
    /// A route (number, caller-or-extension) is already held by another active binding.
    #[error("bind conflict: {0}")]
    BindConflict(String),
    /// `customer_bind_id` was used before with a different payload.
    #[error("customer_bind_id {0:?} is already used by a binding with a different payload")]
    CustomerBindIdConflict(String),
    /// A request needs a state the system is not in (e.g. updating an ended binding).
    #[error("{message}")]
    FailedPrecondition {
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
    pub fn add(&mut self, reason: &'static str, field: &str, description: impl Into<String>) {
        self.reason.get_or_insert(reason);
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
