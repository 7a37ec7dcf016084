//! API keys on the gRPC server (issue 9 item 1).
//!
//! Every call of the `pns.v1` services passes [`Auth`] (a tonic interceptor); health and
//! reflection are added without it and need no key. A key arrives as
//! `authorization: Bearer <key>`; only SHA-1 digests of the configured keys are kept, and the
//! presented key's digest is compared with every one of them in constant time (no early exit),
//! so neither timing nor a log line reveals a key. The resolved [`Caller`] goes into the request
//! extensions; the services check the right each method needs.
//!
//! With no key configured the server is *open*: every caller acts as admin and softswitch, for
//! the tenant of `x-pns-tenant` (`default` when absent). `serve` allows that only on loopback
//! listeners unless `--allow-unauthenticated` (see `config::FileConfig::resolve`).

mod rate;

use std::{collections::HashMap, sync::Arc};

pub use rate::RateLimit;

use sha1::{Digest, Sha1};
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::status::ERROR_DOMAIN;
use super::validate;
use crate::domain::Tenant;

/// ErrorInfo reasons of authentication and authorisation failures.
pub mod reason {
    pub const API_KEY_MISSING: &str = "API_KEY_MISSING";
    pub const API_KEY_INVALID: &str = "API_KEY_INVALID";
    pub const ADMIN_KEY_REQUIRED: &str = "ADMIN_KEY_REQUIRED";
    pub const SOFTSWITCH_KEY_REQUIRED: &str = "SOFTSWITCH_KEY_REQUIRED";
    pub const TENANT_KEY_REQUIRED: &str = "TENANT_KEY_REQUIRED";
    pub const TENANT_MISMATCH: &str = "TENANT_MISMATCH";
    pub const POOL_NOT_ALLOWED: &str = "POOL_NOT_ALLOWED";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
}

/// What a key may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// No key configured (loopback or `--allow-unauthenticated`): everything is allowed.
    Open,
    /// Pools and numbers, softswitch calls, and any tenant's data via `x-pns-tenant`.
    Admin,
    /// `NotifyCallIn` and `ReportCallEvent` only.
    Softswitch,
    /// Bindings and events of this tenant only.
    Tenant(Tenant),
}

/// The authenticated caller of one request (in its extensions).
#[derive(Clone, Debug)]
pub struct Caller {
    pub role: Role,
    /// The tenant the call acts for, or why `x-pns-tenant` is invalid.
    pub tenant: Result<Tenant, String>,
    /// Whether `x-pns-tenant` was sent.
    pub tenant_header: bool,
    /// A tenant key's cap on its concurrent `WatchEvents` streams (`None`: admin, open mode
    /// and softswitch, capped by the process-wide total only).
    pub max_streams: Option<usize>,
}

impl Caller {
    /// The caller of `req`; UNAUTHENTICATED if the interceptor did not run (never the case
    /// for the `pns.v1` services `app::run` serves).
    pub fn of<T>(req: &Request<T>) -> Result<Caller, Status> {
        req.extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| denied(Code::Unauthenticated, reason::API_KEY_MISSING, "no caller"))
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Open | Role::Admin)
    }

    /// Pools and numbers administration.
    pub fn require_admin(&self, what: &str) -> Result<(), Status> {
        if self.is_admin() {
            return Ok(());
        }
        Err(denied(
            Code::PermissionDenied,
            reason::ADMIN_KEY_REQUIRED,
            &format!("{what} needs the admin key"),
        ))
    }

    /// `NotifyCallIn` / `ReportCallEvent`: the softswitch's key or the admin key.
    pub fn require_softswitch(&self, what: &str) -> Result<(), Status> {
        if self.is_admin() || self.role == Role::Softswitch {
            return Ok(());
        }
        Err(denied(
            Code::PermissionDenied,
            reason::SOFTSWITCH_KEY_REQUIRED,
            &format!("{what} needs the softswitch key or the admin key"),
        ))
    }

    /// Bindings and events: a tenant key, or the admin key acting for a tenant. The
    /// softswitch key has no tenant data.
    pub fn tenant_for(&self, what: &str) -> Result<Result<Tenant, String>, Status> {
        if self.role == Role::Softswitch {
            return Err(denied(
                Code::PermissionDenied,
                reason::TENANT_KEY_REQUIRED,
                &format!("{what} needs a tenant key or the admin key"),
            ));
        }
        Ok(self.tenant.clone())
    }

    /// `WatchEvents`: a tenant key sees its tenant's events; the admin key (and open mode) the
    /// events of the tenant `x-pns-tenant` names, or every event without that header.
    pub fn event_scope(&self) -> Result<Result<Option<Tenant>, String>, Status> {
        let t = self.tenant_for("WatchEvents")?;
        Ok(match self.role {
            Role::Open | Role::Admin if !self.tenant_header => Ok(None),
            _ => t.map(Some),
        })
    }
}

/// A status with ErrorInfo (domain `pns.gateway`).
pub fn denied(code: Code, why: &str, msg: &str) -> Status {
    let mut d = ErrorDetails::new();
    d.set_error_info(why, ERROR_DOMAIN, HashMap::<String, String>::new());
    Status::with_error_details(code, msg, d)
}

type KeyDigest = [u8; 20];

fn digest(key: &str) -> KeyDigest {
    Sha1::digest(key.as_bytes()).into()
}

fn same(a: &KeyDigest, b: &KeyDigest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The configured keys (digests only) and their roles; empty = open mode.
#[derive(Clone, Default)]
pub struct Auth {
    keys: Arc<Vec<(KeyDigest, Role)>>,
    /// Request-rate buckets of the tenants that have a limit.
    limits: Arc<HashMap<String, rate::Bucket>>,
    /// `max_streams` of the tenants that set one (others: `events::DEFAULT_TENANT_STREAMS`).
    stream_caps: Arc<HashMap<String, usize>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Roles only: never a key or a digest.
        f.debug_struct("Auth")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Auth {
    /// No keys: open mode.
    pub fn open() -> Self {
        Self::default()
    }

    /// `keys`: (key, role) pairs; the keys are hashed at once and not kept.
    pub fn with_keys(keys: impl IntoIterator<Item = (String, Role)>) -> Self {
        Self {
            keys: Arc::new(keys.into_iter().map(|(k, r)| (digest(&k), r)).collect()),
            limits: Arc::default(),
            stream_caps: Arc::default(),
        }
    }

    /// Caps on concurrent `WatchEvents` streams by tenant name (tenants not named get
    /// `events::DEFAULT_TENANT_STREAMS`).
    pub fn with_stream_caps(mut self, caps: impl IntoIterator<Item = (String, usize)>) -> Self {
        self.stream_caps = Arc::new(caps.into_iter().collect());
        self
    }

    /// Request-rate limits by tenant name (tenants not named are not limited).
    pub fn with_limits(mut self, limits: impl IntoIterator<Item = (String, RateLimit)>) -> Self {
        self.limits = Arc::new(
            limits
                .into_iter()
                .map(|(t, l)| (t, rate::Bucket::new(l)))
                .collect(),
        );
        self
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    fn role_of(&self, key: &str) -> Option<Role> {
        let d = digest(key);
        let mut found = None;
        // Every digest is compared, whichever matches.
        for (k, role) in self.keys.iter() {
            if same(k, &d) && found.is_none() {
                found = Some(role.clone());
            }
        }
        found
    }

    /// Who sent `md`, or UNAUTHENTICATED / PERMISSION_DENIED.
    pub fn authenticate(&self, md: &tonic::metadata::MetadataMap) -> Result<Caller, Status> {
        if self.is_open() {
            return Ok(Caller {
                role: Role::Open,
                tenant: validate::tenant(md),
                tenant_header: md.get(super::TENANT_HEADER).is_some(),
                max_streams: None,
            });
        }
        let mut values = md.get_all("authorization").iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(denied(
                Code::Unauthenticated,
                reason::API_KEY_MISSING,
                "an API key is required: send `authorization: Bearer <key>` once",
            ));
        };
        let key = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, key) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            })
            .filter(|k| !k.is_empty());
        let Some(role) = key.and_then(|k| self.role_of(k)) else {
            return Err(denied(
                Code::Unauthenticated,
                reason::API_KEY_INVALID,
                "the API key is not valid (expected `authorization: Bearer <key>` with a configured key)",
            ));
        };
        let tenant = match &role {
            Role::Open | Role::Admin => validate::tenant(md),
            Role::Softswitch => Ok("default".into()),
            Role::Tenant(own) => match md.get(super::TENANT_HEADER).map(|_| validate::tenant(md)) {
                Some(Ok(t)) if &t != own => {
                    return Err(denied(
                        Code::PermissionDenied,
                        reason::TENANT_MISMATCH,
                        "x-pns-tenant names another tenant; only the admin key may act for a tenant",
                    ));
                }
                Some(Err(e)) => Err(e),
                _ => Ok(own.clone()),
            },
        };
        let max_streams = match &role {
            Role::Tenant(own) => Some(
                self.stream_caps
                    .get(own)
                    .copied()
                    .unwrap_or(crate::events::DEFAULT_TENANT_STREAMS),
            ),
            Role::Open | Role::Admin | Role::Softswitch => None,
        };
        Ok(Caller {
            role,
            tenant,
            tenant_header: md.get(super::TENANT_HEADER).is_some(),
            max_streams,
        })
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.authenticate(req.metadata())?;
        if let Role::Tenant(name) = &caller.role
            && let Some(bucket) = self.limits.get(name)
            && let Err(wait) = bucket.take()
        {
            let mut d = ErrorDetails::new();
            d.set_error_info(
                reason::RATE_LIMITED,
                ERROR_DOMAIN,
                HashMap::from([("tenant".to_owned(), name.clone())]),
            );
            d.set_retry_info(Some(wait));
            return Err(Status::with_error_details(
                Code::ResourceExhausted,
                format!(
                    "tenant {name} is over its request rate; retry in {} ms",
                    wait.as_millis().max(1)
                ),
                d,
            ));
        }
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    fn md(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    fn auth() -> Auth {
        Auth::with_keys([
            ("admin-key-0123456789".into(), Role::Admin),
            ("acme-key-old-0123456".into(), Role::Tenant("acme".into())),
            ("acme-key-new-0123456".into(), Role::Tenant("acme".into())),
        ])
    }

    #[test]
    fn keys_resolve_to_roles_and_tenants() {
        let a = auth();
        let c = a
            .authenticate(&md(&[("authorization", "Bearer acme-key-old-0123456")]))
            .unwrap();
        assert_eq!(c.role, Role::Tenant("acme".into()));
        assert_eq!(c.tenant.unwrap(), "acme");
        let c = a
            .authenticate(&md(&[("authorization", "bearer  acme-key-new-0123456 ")]))
            .unwrap();
        assert_eq!(c.tenant.unwrap(), "acme");
        let c = a
            .authenticate(&md(&[
                ("authorization", "Bearer admin-key-0123456789"),
                ("x-pns-tenant", "zeta"),
            ]))
            .unwrap();
        assert_eq!((c.role, c.tenant.unwrap()), (Role::Admin, "zeta".into()));
    }

    #[test]
    fn missing_unknown_and_foreign_tenant_are_refused() {
        let a = auth();
        for m in [
            md(&[]),
            md(&[("authorization", "acme-key-old-0123456")]),
            md(&[("authorization", "Bearer acme-key-old-012345")]),
            md(&[("authorization", "Basic acme-key-old-0123456")]),
            md(&[
                ("authorization", "Bearer acme-key-old-0123456"),
                ("authorization", "Bearer acme-key-old-0123456"),
            ]),
        ] {
            assert_eq!(
                a.authenticate(&m).unwrap_err().code(),
                Code::Unauthenticated
            );
        }
        let e = a
            .authenticate(&md(&[
                ("authorization", "Bearer acme-key-old-0123456"),
                ("x-pns-tenant", "zeta"),
            ]))
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        // Its own tenant in the header is fine.
        assert!(
            a.authenticate(&md(&[
                ("authorization", "Bearer acme-key-old-0123456"),
                ("x-pns-tenant", "acme"),
            ]))
            .is_ok()
        );
    }

    #[test]
    fn open_mode_is_admin_for_the_header_tenant() {
        let c = Auth::open().authenticate(&md(&[])).unwrap();
        assert!(c.is_admin());
        assert_eq!(c.tenant.unwrap(), "default");
    }
}
