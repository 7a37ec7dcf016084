//! `[auth]` / `[[tenants]]` validation: every problem at once, names of variables only, and
//! the open-mode rule, before any database is touched.

use pns_gateway::config::{Exposure, FileConfig};

fn load(text: &str) -> FileConfig {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pns.toml");
    std::fs::write(&p, text).unwrap();
    FileConfig::load(Some(&p)).expect("parses")
}

fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |n| {
        pairs
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.to_string())
    }
}

fn on(addrs: &[&str], allow: bool) -> Exposure {
    Exposure {
        listeners: addrs.iter().map(|a| a.to_string()).collect(),
        allow_unauthenticated: allow,
    }
}

#[test]
fn every_key_problem_is_reported_at_once_without_values() {
    let cfg = load(
        r#"
[auth]
admin_key_env = "K_ADMIN"
[[tenants]]
name = "acme"
api_key_env = "K_SHORT"
api_key_envs = ["K_MISSING"]
[[tenants]]
name = "bad name!"
api_key_env = "K_X"
[[tenants]]
name = "zeta"
[[tenants]]
name = "dup"
api_key_env = "K_DUP"
"#,
    );
    let e = cfg
        .resolve(
            env(&[
                ("K_ADMIN", "same-key-0123456789"),
                ("K_SHORT", "short"),
                ("K_DUP", "same-key-0123456789"),
            ]),
            &on(&["127.0.0.1:1"], false),
        )
        .err()
        .expect("invalid")
        .to_string();
    for needle in [
        "5 problems",
        "K_SHORT",
        "K_MISSING",
        "bad name!",
        "tenant \"zeta\" needs api_key_env",
        "K_DUP",
    ] {
        assert!(e.contains(needle), "{needle:?} in {e}");
    }
    assert!(
        !e.contains("same-key-0123456789") && !e.contains("short\n"),
        "{e}"
    );
}

#[test]
fn open_mode_only_on_loopback_or_when_allowed() {
    let none = load("");
    let ok = none
        .resolve(
            env(&[]),
            &on(&["127.0.0.1:50051", "[::1]:8080", "localhost:1"], false),
        )
        .expect("loopback is fine");
    assert!(ok.auth.is_open() && ok.open_mode.is_some());
    let e = none
        .resolve(env(&[]), &on(&["127.0.0.1:50051", "0.0.0.0:8080"], false))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("0.0.0.0:8080") && !e.contains("127.0.0.1:50051"),
        "{e}"
    );
    let allowed = none
        .resolve(env(&[]), &on(&["10.0.0.5:50051"], true))
        .expect("allowed");
    assert!(
        allowed
            .open_mode
            .unwrap()
            .contains("WITHOUT AUTHENTICATION")
    );

    let keyed = load("[[tenants]]\nname = \"acme\"\napi_key_env = \"K\"\n");
    let r = keyed
        .resolve(
            env(&[("K", "0123456789abcdefXYZ")]),
            &on(&["0.0.0.0:1"], false),
        )
        .expect("keys: any address");
    assert!(!r.auth.is_open() && r.open_mode.is_none());
}
