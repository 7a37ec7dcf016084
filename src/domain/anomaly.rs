//! What the invariant checker (`Store::check_invariants`, `pns-gateway check`, `pns-load
//! --check`) reports: one broken invariant of DESIGN.md §3, as a stable kind and a description
//! whose real phone numbers are masked.

use std::fmt;

use super::{mask, text::echo};

/// One invariant violation found in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// One of the [`kind`] constants: stable, for scripts and tests.
    pub kind: &'static str,
    /// What is wrong, naming rows by id and numbers masked.
    pub detail: String,
}

impl Anomaly {
    pub fn new(kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// What a check looked at: shown when it finds nothing, so a check of the wrong (empty)
/// database is visible as such.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckScope {
    pub bindings: i64,
    pub active_bindings: i64,
    pub routes: i64,
    pub numbers: i64,
    pub events: i64,
}

impl fmt::Display for CheckScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bindings ({} active), {} routes, {} numbers, {} events",
            self.bindings, self.active_bindings, self.routes, self.numbers, self.events
        )
    }
}

/// The one-line verdict of a check: `ok: …` or `FAILED: …`.
pub fn verdict(found: &[Anomaly], scope: &CheckScope) -> String {
    let listed = found.iter().filter(|a| a.kind != kind::TRUNCATED).count();
    if found.is_empty() {
        format!("ok: no anomalies in {scope}")
    } else if listed < found.len() {
        format!("FAILED: {listed} anomalies listed, more not listed, in {scope}")
    } else {
        format!("FAILED: {listed} anomalies in {scope}")
    }
}

/// The anomaly kinds, one per invariant query.
pub mod kind {
    /// Two rows of `routes` with one (number, route key) (invariant 2; the unique index should
    /// make this impossible).
    pub const DUPLICATE_ROUTE: &str = "duplicate_route";
    /// A route naming a binding that does not exist.
    pub const ORPHAN_ROUTE: &str = "orphan_route";
    /// A route still held by an ended (expired, unbound, pending) binding.
    pub const ENDED_BINDING_ROUTE: &str = "ended_binding_route";
    /// A route on an active binding that its mode and state do not call for.
    pub const UNEXPECTED_ROUTE: &str = "unexpected_route";
    /// An active local binding without a route its mode and state need.
    pub const MISSING_ROUTE: &str = "missing_route";
    /// An active local binding without a field its state needs (phone_a, phone_b, Y, extension).
    pub const INCOMPLETE_BINDING: &str = "incomplete_binding";
    /// `active` disagrees with `state`, or the state does not belong to the mode.
    pub const STATE_MISMATCH: &str = "state_mismatch";
    /// `numbers.locked_by` names a binding that does not exist.
    pub const ORPHAN_LOCK: &str = "orphan_lock";
    /// `numbers.locked_by` names an ended binding.
    pub const ENDED_BINDING_LOCK: &str = "ended_binding_lock";
    /// `numbers.locked_by` names an active binding that is not an XYB-state local binding on
    /// that X.
    pub const UNEXPECTED_LOCK: &str = "unexpected_lock";
    /// An active XYB binding whose X is not locked by it (invariant 1).
    pub const MISSING_LOCK: &str = "missing_lock";
    /// A locked X that another active binding uses as Y or as its AXN X (invariant 1).
    pub const LOCKED_NUMBER_SHARED: &str = "locked_number_shared";
    /// An active local binding whose X or Y is not a number of its pool.
    pub const UNKNOWN_NUMBER: &str = "unknown_number";
    /// `numbers.shared_count` differs from the active bindings using the number as Y or AXN X.
    pub const SHARED_COUNT_MISMATCH: &str = "shared_count_mismatch";
    /// `numbers.ext_count` differs from the active AXN bindings on the number.
    pub const EXT_COUNT_MISMATCH: &str = "ext_count_mismatch";
    /// Two bindings of one tenant with one `customer_bind_id` (invariant 3).
    pub const DUPLICATE_CUSTOMER_BIND_ID: &str = "duplicate_customer_bind_id";
    /// The `event_seq` counter row is missing or not alone.
    pub const EVENT_COUNTER: &str = "event_counter";
    /// Sequence numbers missing from 1..=event_seq.last.
    pub const EVENT_GAP: &str = "event_gap";
    /// An event numbered outside 1..=event_seq.last.
    pub const EVENT_OUT_OF_RANGE: &str = "event_out_of_range";
    /// Two events with one sequence number.
    pub const DUPLICATE_EVENT_SEQ: &str = "duplicate_event_seq";
    /// Two events with one `dedupe_key` (invariant 6).
    pub const DUPLICATE_DEDUPE_KEY: &str = "duplicate_dedupe_key";
    /// More rows of the previous kind than are listed.
    pub const TRUNCATED: &str = "truncated";
}

/// A stored free-text value for an anomaly detail: bounded and printable, with every run of 7
/// or more digits (a phone number inside a route key, dedupe key or id) masked.
pub fn redact(s: &str) -> String {
    let s = echo(s);
    let mut out = String::with_capacity(s.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 7 {
            out.push_str(&mask(digits));
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// A route key (`c:<caller>` or `e:<extension>`) in words, the caller masked.
pub fn route_key_label(key: &str) -> String {
    match (key.strip_prefix("c:"), key.strip_prefix("e:")) {
        (Some(caller), _) => format!("caller {}", mask(caller)),
        (_, Some(ext)) => format!("extension {}", redact(ext)),
        _ => format!("key {:?}", redact(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_mask_numbers_inside_keys() {
        assert_eq!(
            redact("grpc|call-85291112222|call.incoming|"),
            "grpc|call-8529****222|call.incoming|"
        );
        assert_eq!(redact("order-123456"), "order-123456");
        assert_eq!(route_key_label("c:85291112222"), "caller 8529****222");
        assert_eq!(route_key_label("e:101"), "extension 101");
        assert_eq!(route_key_label("x:85291112222"), "key \"x:8529****222\"");
        assert_eq!(
            Anomaly::new(kind::ORPHAN_ROUTE, "r").to_string(),
            "orphan_route: r"
        );
    }

    #[test]
    fn the_verdict_counts_listed_anomalies_and_says_when_lists_were_cut() {
        let scope = CheckScope::default();
        assert!(verdict(&[], &scope).starts_with("ok: no anomalies in 0 bindings"));
        let a = Anomaly::new(kind::ORPHAN_ROUTE, "r");
        let cut = Anomaly::new(kind::TRUNCATED, "more");
        assert!(verdict(&[a.clone(), a.clone()], &scope).starts_with("FAILED: 2 anomalies in"));
        assert!(verdict(&[cut, a], &scope).starts_with("FAILED: 1 anomalies listed, more not"));
    }
}
