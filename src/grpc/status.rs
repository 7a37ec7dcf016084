//! DomainError -> tonic::Status with `google.rpc.ErrorInfo` (domain `pns.gateway`) and
//! `BadRequest` violations. The match is exhaustive on purpose: a new variant forces a decision.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{
    DomainError,
    error::reason,
    provider::{FailureClass, Outcome, ProviderError},
};

pub const ERROR_DOMAIN: &str = "pns.gateway";

pub fn to_status(e: DomainError) -> Status {
    let msg = e.to_string();
    let (code, why, meta): (Code, &str, HashMap<String, String>) = match &e {
        DomainError::InvalidArgument { reason, violations } => {
            let mut d = ErrorDetails::new();
            d.set_error_info(*reason, ERROR_DOMAIN, HashMap::new());
            for v in violations {
                d.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            return Status::with_error_details(Code::InvalidArgument, msg, d);
        }
        DomainError::PoolNotFound(p) => {
            (Code::NotFound, reason::POOL_NOT_FOUND, meta("pool_key", p))
        }
        DomainError::PoolAlreadyExists(p) => (
            Code::AlreadyExists,
            reason::POOL_ALREADY_EXISTS,
            meta("pool_key", p),
        ),
        DomainError::BindingNotFound => (Code::NotFound, reason::BINDING_NOT_FOUND, HashMap::new()),
        DomainError::NumberNotFound { reason, .. } => (Code::NotFound, reason, HashMap::new()),
        DomainError::NoAvailableNumber { pool, .. } => (
            Code::ResourceExhausted,
            reason::NO_AVAILABLE_NUMBER,
            meta("pool_key", pool),
        ),
        DomainError::NumberLocked { number } => (
            Code::FailedPrecondition,
            reason::NUMBER_LOCKED,
            meta("number", number),
        ),
        DomainError::BindConflict(_) => {
            (Code::AlreadyExists, reason::BIND_CONFLICT, HashMap::new())
        }
        DomainError::CustomerBindIdConflict(id) => (
            Code::AlreadyExists,
            reason::CUSTOMER_BIND_ID_CONFLICT,
            meta("customer_bind_id", id),
        ),
        DomainError::FailedPrecondition { reason, .. } => {
            (Code::FailedPrecondition, reason, HashMap::new())
        }
        DomainError::Upstream(pe) => return upstream_status(pe, msg),
        DomainError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "storage unavailable");
            let mut d = ErrorDetails::new();
            d.set_error_info(reason::UNAVAILABLE, ERROR_DOMAIN, HashMap::new());
            d.set_retry_info(Some(std::time::Duration::from_millis(500)));
            return Status::with_error_details(
                Code::Unavailable,
                "storage temporarily unavailable; retry",
                d,
            );
        }
        DomainError::Internal(detail) => {
            tracing::error!(error = %detail, "internal error");
            let mut d = ErrorDetails::new();
            d.set_error_info(reason::INTERNAL, ERROR_DOMAIN, HashMap::new());
            return Status::with_error_details(Code::Internal, "internal error", d);
        }
    };
    let mut d = ErrorDetails::new();
    d.set_error_info(why, ERROR_DOMAIN, meta);
    Status::with_error_details(code, msg, d)
}

/// Carrier failures: the class decides the code; the carrier's own code travels in ErrorInfo
/// metadata (`provider`, `provider_code`). Messages never carry secrets (the adapters see to it).
fn upstream_status(pe: &ProviderError, msg: String) -> Status {
    let reason_for_invalid = if pe.code.contains("MOBILE_NUMBER_ILLEGAL") {
        reason::MOBILE_NUMBER_ILLEGAL
    } else if pe.code.contains("EXPIRE_DATE_ILLEGAL") {
        reason::EXPIRE_DATE_ILLEGAL
    } else {
        reason::PROVIDER_REJECTED
    };
    let (code, why) = match (pe.class, pe.outcome) {
        (FailureClass::InvalidArgument, _) => (Code::InvalidArgument, reason_for_invalid),
        (FailureClass::NoAvailableNumber, _) => {
            (Code::ResourceExhausted, reason::NO_AVAILABLE_NUMBER)
        }
        (FailureClass::BindConflict, _) => (Code::AlreadyExists, reason::BIND_CONFLICT),
        (FailureClass::NotFound, _) => (Code::NotFound, reason::BINDING_NOT_FOUND),
        (FailureClass::Throttled, _) => (Code::ResourceExhausted, reason::PROVIDER_THROTTLED),
        (FailureClass::Configuration, _) => (Code::Internal, reason::PROVIDER_CONFIGURATION),
        (FailureClass::PermissionDenied, _) => {
            (Code::PermissionDenied, reason::PROVIDER_PERMISSION_DENIED)
        }
        (FailureClass::FailedPrecondition, _) => {
            (Code::FailedPrecondition, reason::PROVIDER_REJECTED)
        }
        (FailureClass::Unsupported, _) => {
            (Code::FailedPrecondition, reason::PROVIDER_NOT_SUPPORTED)
        }
        (FailureClass::Unavailable, Outcome::Unknown) => {
            (Code::Unavailable, reason::UPSTREAM_OUTCOME_UNKNOWN)
        }
        (FailureClass::Unavailable, Outcome::Definite) => {
            (Code::Unavailable, reason::PROVIDER_UNAVAILABLE)
        }
    };
    if code == Code::Internal {
        tracing::error!(provider = pe.provider, code = %pe.code, "carrier configuration error: {}", pe.message);
    }
    let mut d = ErrorDetails::new();
    d.set_error_info(
        why,
        ERROR_DOMAIN,
        HashMap::from([
            ("provider".to_owned(), pe.provider.to_owned()),
            ("provider_code".to_owned(), pe.code.clone()),
        ]),
    );
    if let Some(after) = pe.retry_after {
        d.set_retry_info(Some(after));
    } else if code == Code::Unavailable {
        d.set_retry_info(Some(std::time::Duration::from_secs(1)));
    }
    Status::with_error_details(code, msg, d)
}

fn meta(k: &str, v: &str) -> HashMap<String, String> {
    HashMap::from([(k.to_owned(), v.to_owned())])
}
