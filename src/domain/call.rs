//! Calls: the normalised call report every source is converted into (softswitch gRPC,
//! NXCloud CDR push, Aliyun receipts), and the routing decision for a call-in.

use super::binding::{Millis, Provider};

/// What happened on a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallEventKind {
    /// A caller dialled a virtual number (call-in / Aliyun `SecretStartReport`).
    Incoming,
    /// The callee's phone rings (Aliyun `SecretRingReport`).
    Ringing,
    /// The callee answered (Aliyun `SecretPickUpReport`).
    Answered,
    /// The call ended; carries the CDR fields (NXCloud CDR push, Aliyun `SecretReport`).
    Hangup,
    /// A recording can be fetched (Aliyun `SecretRecording`; NXCloud `callRecordFile`).
    RecordingReady,
    /// A call arrived for a number with no binding (NXCloud error push 10013,
    /// Aliyun `control_msg = NO_SUBS_EXIST`).
    NoBinding,
}

impl CallEventKind {
    /// The event kind (`Event.kind`) of a report of this kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallEventKind::Incoming => "call.incoming",
            CallEventKind::Ringing => "call.ringing",
            CallEventKind::Answered => "call.answered",
            CallEventKind::Hangup => "call.hangup",
            CallEventKind::RecordingReady => "call.recording_ready",
            CallEventKind::NoBinding => "call.no_binding",
        }
    }
}

/// Who released the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseDirection {
    Caller,
    Callee,
    Platform,
}

impl ReleaseDirection {
    pub const ALL: [ReleaseDirection; 3] = [
        ReleaseDirection::Caller,
        ReleaseDirection::Callee,
        ReleaseDirection::Platform,
    ];

    /// The word stored in an event's detail (`release_direction`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseDirection::Caller => "caller",
            ReleaseDirection::Callee => "callee",
            ReleaseDirection::Platform => "platform",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One normalised report about one call (leg). Real numbers are data here; never log them
/// unmasked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallReport {
    pub provider: Option<Provider>,
    pub kind: Option<CallEventKind>,
    /// The carrier's or softswitch's call id (NXCloud `callId`, Aliyun `call_id`).
    pub call_id: String,
    /// Distinguishes several reports of one kind on one call (NXCloud `legList` entries:
    /// `callType` or leg `uuid`); empty when the call has one leg.
    pub leg: String,
    /// Carrier binding id (NXCloud `bindId`, Aliyun `sub_id`/`subs_id`).
    pub provider_binding_id: Option<String>,
    /// NXCloud `customerBindId`.
    pub customer_bind_id: Option<String>,
    /// Calling party (A, or B calling back), digits only (a leading `+` removed).
    pub caller: Option<String>,
    /// The virtual number dialled (X, or Y).
    pub called: Option<String>,
    /// The party the call was connected to.
    pub callee: Option<String>,
    /// Extension keyed by the caller, if any.
    pub extension: Option<String>,
    pub call_at: Option<Millis>,
    pub ring_at: Option<Millis>,
    pub answer_at: Option<Millis>,
    pub end_at: Option<Millis>,
    pub duration_seconds: Option<i64>,
    pub release_direction: Option<ReleaseDirection>,
    /// Q.850 cause (NXCloud `hangupCode`, Aliyun `release_cause`).
    pub release_cause: Option<i32>,
    /// Carrier's text for the end of the call (NXCloud `hangupCause`/`callStatusMsg`).
    pub release_reason: Option<String>,
    pub recording_url: Option<String>,
    /// Pass-through fields echoed by the carrier (Aliyun `out_id`, NXCloud `ext`).
    pub out_id: Option<String>,
    pub ext: Option<String>,
    /// The carrier's pool (Aliyun `pool_key`/`partner_key`).
    pub carrier_pool_key: Option<String>,
    /// The item as received, kept with the event for audit.
    pub raw: serde_json::Value,
}

impl CallReport {
    /// The de-duplication key of a push: (provider, call id, event kind, leg).
    pub fn dedupe_key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.provider.map(Provider::as_str).unwrap_or("grpc"),
            self.call_id,
            self.kind.map(CallEventKind::as_str).unwrap_or(""),
            self.leg
        )
    }
}

/// Why a carrier push was rejected (HTTP 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PushError(pub String);

/// A call-in from a softswitch, validated.
#[derive(Debug, Clone)]
pub struct CallIn {
    pub caller: super::phone::PhoneNumber,
    pub called: super::phone::PhoneNumber,
    pub extension: Option<super::phone::Extension>,
    pub call_id: String,
}

/// Why no binding routes a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoBindingReason {
    UnknownNumber,
    Expired,
    WrongExtension,
    DirectionNotAllowed,
    NoAvailableNumber,
    /// The number is a pool number, but no binding routes any call on it.
    NotBound,
}

impl NoBindingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            NoBindingReason::UnknownNumber => "unknown_number",
            NoBindingReason::Expired => "expired",
            NoBindingReason::WrongExtension => "wrong_extension",
            NoBindingReason::DirectionNotAllowed => "direction_not_allowed",
            NoBindingReason::NoAvailableNumber => "no_available_number",
            NoBindingReason::NotBound => "not_bound",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            NoBindingReason::UnknownNumber,
            NoBindingReason::Expired,
            NoBindingReason::WrongExtension,
            NoBindingReason::DirectionNotAllowed,
            NoBindingReason::NoAvailableNumber,
            NoBindingReason::NotBound,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// The routing decision for a call-in.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Connect {
        connect_to: String,
        display: String,
        recording: bool,
        binding: super::binding::Binding,
    },
    CollectExtension,
    NoBinding {
        reason: NoBindingReason,
        binding: Option<super::binding::Binding>,
    },
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Connect { .. } => "connect",
            Decision::CollectExtension => "collect_extension",
            Decision::NoBinding { .. } => "no_binding",
        }
    }

    pub fn binding(&self) -> Option<&super::binding::Binding> {
        match self {
            Decision::Connect { binding, .. } => Some(binding),
            Decision::NoBinding { binding, .. } => binding.as_ref(),
            Decision::CollectExtension => None,
        }
    }
}
