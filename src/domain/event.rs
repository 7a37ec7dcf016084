//! The event log: binding lifecycle and call events, each with a sequence number that is
//! assigned in commit order (see `storage::events`), so a subscriber resumes with the last
//! sequence it saw and misses nothing.

use std::fmt;

use super::binding::{Binding, Millis, Provider};
use super::phone::mask;

pub const BINDING_CREATED: &str = "binding.created";
pub const BINDING_CONVERTED: &str = "binding.converted";
pub const BINDING_UPDATED: &str = "binding.updated";
pub const BINDING_EXPIRED: &str = "binding.expired";
pub const BINDING_UNBOUND: &str = "binding.unbound";

/// Every kind a `WatchEvents` filter may name (the `call.*` ones are `CallEventKind::as_str`).
pub const EVENT_KINDS: [&str; 11] = [
    BINDING_CREATED,
    BINDING_CONVERTED,
    BINDING_UPDATED,
    BINDING_EXPIRED,
    BINDING_UNBOUND,
    "call.incoming",
    "call.ringing",
    "call.answered",
    "call.hangup",
    "call.recording_ready",
    "call.no_binding",
];

/// An event to append. Empty strings mean "not applicable" (e.g. `call_id` on a binding
/// event). `caller`/`callee` are real numbers: data, masked in `Debug`.
#[derive(Clone, Default, PartialEq)]
pub struct NewEvent {
    pub kind: String,
    /// Tenant of the binding the event is about; empty when there is none (admin only).
    pub tenant: String,
    pub binding_id: Option<String>,
    pub pool_key: String,
    pub provider: Option<Provider>,
    pub customer_bind_id: Option<String>,
    pub customer_user_id: String,
    pub ext: String,
    pub out_id: String,
    pub call_id: String,
    pub caller: String,
    pub called: String,
    pub callee: String,
    /// Kind-specific details (decision, CDR fields, recording URL, the raw carrier item).
    pub detail: serde_json::Value,
    pub occurred_at: Millis,
    /// Set for events that may be delivered twice (carrier pushes): the second append returns
    /// the first one's sequence instead of storing a copy.
    pub dedupe_key: Option<String>,
}

impl NewEvent {
    /// The event as the log holds it once stored with `sequence` (what `read_events` gives).
    pub fn stored(self, sequence: i64) -> Event {
        Event {
            sequence,
            kind: self.kind,
            tenant: self.tenant,
            binding_id: self.binding_id,
            pool_key: self.pool_key,
            provider: self.provider,
            customer_bind_id: self.customer_bind_id,
            customer_user_id: self.customer_user_id,
            ext: self.ext,
            out_id: self.out_id,
            call_id: self.call_id,
            caller: self.caller,
            called: self.called,
            callee: self.callee,
            detail: self.detail,
            occurred_at: self.occurred_at,
            dedupe_key: self.dedupe_key,
        }
    }

    /// A lifecycle event of `b`; `detail` carries the binding's state, mode, virtual numbers and
    /// expiry (not the real numbers: subscribers that need them call `GetBinding`).
    pub fn for_binding(kind: &str, b: &Binding, now: Millis) -> Self {
        let detail = binding_detail(
            b.mode.as_str(),
            b.state.as_str(),
            &b.number_x,
            b.number_y.as_deref(),
            b.extension.as_deref(),
            b.expire_at,
        );
        Self::about_binding(kind, b, detail, now)
    }

    /// An event about `b` with a `detail` of its own (a call-in's decision, say).
    pub fn about_binding(kind: &str, b: &Binding, detail: serde_json::Value, now: Millis) -> Self {
        Self {
            kind: kind.to_owned(),
            tenant: b.tenant.clone(),
            binding_id: Some(b.id.clone()),
            pool_key: b.pool_key.clone(),
            provider: Some(b.provider),
            customer_bind_id: b.customer_bind_id.clone(),
            customer_user_id: b.customer_user_id.clone(),
            ext: b.ext.clone(),
            out_id: b.out_id.clone(),
            call_id: String::new(),
            caller: String::new(),
            called: String::new(),
            callee: String::new(),
            detail,
            occurred_at: now,
            dedupe_key: None,
        }
    }
}

/// The `detail` of a lifecycle event (shared with storage, which builds it from a row).
pub fn binding_detail(
    mode: &str,
    state: &str,
    number_x: &str,
    number_y: Option<&str>,
    extension: Option<&str>,
    expire_at: Millis,
) -> serde_json::Value {
    serde_json::json!({
        "mode": mode,
        "state": state,
        "number_x": number_x,
        "number_y": number_y,
        "extension": extension,
        "expire_at_ms": expire_at,
    })
}

/// A stored event.
#[derive(Clone, Default, PartialEq)]
pub struct Event {
    pub sequence: i64,
    pub kind: String,
    /// Tenant of the binding the event is about; empty when there is none.
    pub tenant: String,
    pub binding_id: Option<String>,
    pub pool_key: String,
    pub provider: Option<Provider>,
    pub customer_bind_id: Option<String>,
    pub customer_user_id: String,
    pub ext: String,
    pub out_id: String,
    pub call_id: String,
    pub caller: String,
    pub called: String,
    pub callee: String,
    pub detail: serde_json::Value,
    pub occurred_at: Millis,
    pub dedupe_key: Option<String>,
}

impl fmt::Debug for NewEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEvent")
            .field("kind", &self.kind)
            .field("binding_id", &self.binding_id)
            .field("pool_key", &self.pool_key)
            .field("call_id", &self.call_id)
            .field("caller", &mask(&self.caller))
            .field("callee", &mask(&self.callee))
            .field("dedupe_key", &self.dedupe_key)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("sequence", &self.sequence)
            .field("kind", &self.kind)
            .field("binding_id", &self.binding_id)
            .field("pool_key", &self.pool_key)
            .field("call_id", &self.call_id)
            .field("caller", &mask(&self.caller))
            .field("callee", &mask(&self.callee))
            .finish_non_exhaustive()
    }
}

/// A page of the log: `sequence > after` (and `<= up_to` when set), filters combined with AND,
/// in sequence order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this tenant's events; `None` = every tenant's (the admin without `x-pns-tenant`).
    pub tenant: Option<String>,
    pub after: i64,
    /// Upper bound (inclusive), so a reader can scan a known-committed range and then move its
    /// cursor past events its filters skipped.
    pub up_to: Option<i64>,
    pub pool_key: Option<String>,
    pub binding_id: Option<String>,
    pub customer_user_id: Option<String>,
    /// Empty = all kinds.
    pub kinds: Vec<String>,
    pub limit: u64,
}

impl EventFilter {
    /// The same test the storage query applies (every set field equal, kind among `kinds`), for
    /// events served from memory.
    pub fn matches(&self, e: &Event) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == e.tenant)
            && self.pool_key.as_ref().is_none_or(|p| *p == e.pool_key)
            && self
                .binding_id
                .as_ref()
                .is_none_or(|b| e.binding_id.as_ref() == Some(b))
            && self
                .customer_user_id
                .as_ref()
                .is_none_or(|u| *u == e.customer_user_id)
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
    }
}
