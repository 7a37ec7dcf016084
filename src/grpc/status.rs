//! DomainError -> tonic::Status with `google.rpc.ErrorInfo` (domain `pns.gateway`) and
//! `BadRequest` violations. The match is exhaustive on purpose: a new variant forces a decision.
//!
//! The trailer is bounded whatever the input: the message is cut to [`MAX_MESSAGE_BYTES`],
//! ErrorInfo metadata values to 64 characters (`domain::text::echo`), and at most
//! `MAX_REPORTED_VIOLATIONS` violations of bounded size are listed. A default client refuses
//! trailers over 16 KiB (hyper's `max_header_list_size`), and then sees RESOURCE_EXHAUSTED
//! instead of the answer.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{
    DomainError,
    error::{MAX_REPORTED_VIOLATIONS, reason},
    provider::{FailureClass, Outcome, ProviderError},
    text::{cut_bytes, echo},
};

pub const ERROR_DOMAIN: &str = "pns.gateway";

/// Longest status message (`grpc-message`), in bytes of UTF-8 before percent-encoding.
pub const MAX_MESSAGE_BYTES: usize = 1021;
/// Longest field path and description of one `BadRequest` violation, in bytes.
const MAX_FIELD_BYTES: usize = 64;
const MAX_DESCRIPTION_BYTES: usize = 256;

pub fn to_status(e: DomainError) -> Status {
    let msg = cut_bytes(&e.to_string(), MAX_MESSAGE_BYTES);
    let (code, why, meta): (Code, &str, HashMap<String, String>) = match &e {
        DomainError::InvalidArgument { reason, violations } => {
            let mut d = ErrorDetails::new();
            // Only when the list is cut: how many violations there were in all.
            let meta = if violations.len() > MAX_REPORTED_VIOLATIONS {
                meta("violation_count", &violations.len().to_string())
            } else {
                HashMap::new()
            };
            d.set_error_info(*reason, ERROR_DOMAIN, meta);
            for v in violations.iter().take(MAX_REPORTED_VIOLATIONS) {
                d.add_bad_request_violation(
                    cut_bytes(&v.field, MAX_FIELD_BYTES),
                    cut_bytes(&v.description, MAX_DESCRIPTION_BYTES),
                );
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
        DomainError::PermissionDenied { reason, .. } => {
            (Code::PermissionDenied, reason, HashMap::new())
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
            ("provider_code".to_owned(), echo(&pe.code)),
        ]),
    );
    if let Some(after) = pe.retry_after {
        d.set_retry_info(Some(after));
    } else if code == Code::Unavailable {
        d.set_retry_info(Some(std::time::Duration::from_secs(1)));
    }
    Status::with_error_details(code, msg, d)
}

/// One ErrorInfo metadata entry; the value is a bounded excerpt (it may be client input).
fn meta(k: &str, v: &str) -> HashMap<String, String> {
    HashMap::from([(k.to_owned(), echo(v))])
}
