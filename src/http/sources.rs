//! `[webhooks] allow_networks`: carrier pushes are accepted only from these source networks
//! (empty = from anywhere). The address checked is the TCP peer's; a proxy in front of the
//! gateway must then be inside the list itself (forwarded-for headers are not trusted).

use std::{net::IpAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use ipnet::IpNet;

use super::listener::Peer;

/// The networks carrier pushes may come from; empty = any.
#[derive(Clone, Debug, Default)]
pub struct AllowList(Arc<Vec<IpNet>>);

impl AllowList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(Arc::new(nets))
    }

    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` may push; an IPv4 peer seen on a dual-stack socket (`::ffff:a.b.c.d`)
    /// is checked as the IPv4 address it is.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.is_open() || self.0.iter().any(|n| n.contains(&ip))
    }

    /// Parses `10.0.0.0/8`-style networks; a bare address is its own /32 or /128. Errors name
    /// the entry.
    pub fn parse(entries: &[String]) -> Result<Self, Vec<String>> {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let e = e.trim();
            match e.parse::<IpNet>() {
                Ok(n) => nets.push(n.trunc()),
                Err(_) => match e.parse::<IpAddr>() {
                    Ok(ip) => nets.push(IpNet::from(ip)),
                    Err(_) => bad.push(format!(
                        "[webhooks] allow_networks[{i}] = {:?} is not a network (e.g. 10.0.0.0/8, 2001:db8::/32) or an address",
                        crate::domain::text::echo(e)
                    )),
                },
            }
        }
        if bad.is_empty() {
            Ok(Self::new(nets))
        } else {
            Err(bad)
        }
    }
}

/// Middleware of the webhook routes: 403 before the body is read for a peer outside the list
/// (or an unknown peer, when a list is configured).
pub(super) async fn check(State(allow): State<AllowList>, req: Request, next: Next) -> Response {
    if allow.is_open() {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(Peer(a))| a.ip());
    match peer {
        Some(ip) if allow.allows(ip) => next.run(req).await,
        _ => {
            let peer = peer.map(|ip| ip.to_string());
            tracing::warn!(
                peer = peer.as_deref().unwrap_or("unknown"),
                "carrier push from outside [webhooks] allow_networks refused"
            );
            (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({
                    "code": 403,
                    "msg": "pushes are not accepted from this network"
                })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_only() {
        let a =
            AllowList::parse(&["10.0.0.0/8".into(), "::1/128".into(), "192.0.2.7".into()]).unwrap();
        for ok in ["10.1.2.3", "::1", "192.0.2.7", "::ffff:10.9.9.9"] {
            assert!(a.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in ["11.0.0.1", "127.0.0.1", "192.0.2.8", "::2"] {
            assert!(!a.allows(no.parse().unwrap()), "{no}");
        }
        assert!(AllowList::default().allows("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn every_bad_entry_is_named() {
        let e =
            AllowList::parse(&["10.0.0.0/33".into(), "ok".into(), "::1/128".into()]).unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(e[0].contains("allow_networks[0]") && e[1].contains("allow_networks[1]"));
    }
}
