//! Property test through the real server, on the test database (SQLite, or PostgreSQL when
//! `PNS_TEST_POSTGRES_URL` is set): valid pushes with a few fields replaced by hostile values
//! (NUL/control characters, huge strings, extreme numbers, wrong types) are answered 200 or 400
//! — never 5xx — and a 400 carries a reason and stores nothing.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Number, Value};

use super::hostile::{ali_item, nx_error_push, nx_new, nx_old};
use super::{latest, post};
use crate::carriers::{ALI_TOKEN, NX_TOKEN};
use crate::support::TestServer;

fn hostile_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => "[a-z0-9 ]{0,12}".prop_map(Value::String),
        3 => ("[a-z]{0,6}", prop::sample::select(vec!['\0', '\u{1}', '\u{1b}', '\n', '\u{7f}', '\u{9f}']), "[a-z]{0,6}")
            .prop_map(|(a, c, b)| Value::String(format!("{a}{c}{b}"))),
        2 => (100usize..12_000, prop::sample::select(vec!['9', '界']))
            .prop_map(|(n, c)| Value::String(std::iter::repeat_n(c, n).collect())),
        2 => any::<String>().prop_map(Value::String),
        3 => prop_oneof![any::<i64>(), -3i64..1000, Just(i64::MAX), Just(i64::MIN)].prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        1 => prop_oneof![Just(Value::Null), Just(Value::Bool(true)), Just(serde_json::json!({"a": [1]}))],
    ]
}

const NX_POINTERS: &[&str] = &[
    "/callId",
    "/bindId",
    "/customerBindId",
    "/caller",
    "/callee",
    "/did",
    "/ext",
    "/callStatusMsg",
    "/duration",
    "/startAt",
    "/hangupAt",
    "/hangupCode",
    "/hangupCause",
    "/recordFile",
    "/legList/0/duration",
    "/legList/1/callRecordFile",
    "/legList/1/callStartAt",
    "/legList/1/hangupCode",
    "/legList/0/caller",
    "/requestId",
    "/msg",
    "/code",
    "/data/occurrenceTime",
    "/data/requestParams/caller",
];
const ALI_KEYS: &[&str] = &[
    "call_id",
    "sub_id",
    "pool_key",
    "phone_no",
    "secret_no",
    "peer_no",
    "call_type",
    "call_time",
    "ring_time",
    "start_time",
    "release_time",
    "release_dir",
    "release_cause",
    "record_url",
    "out_id",
    "extension",
    "unconnected_cause",
    "control_msg",
    "city",
];

/// (path, body): a valid push of either carrier with one to three fields replaced.
fn push() -> impl Strategy<Value = (bool, Value)> {
    let nx_template = prop_oneof![Just(nx_new()), Just(nx_old()), Just(nx_error_push())];
    let nx = (
        nx_template,
        prop::collection::vec((prop::sample::select(NX_POINTERS), hostile_leaf()), 1..4),
    )
        .prop_map(|(mut v, edits)| {
            for (ptr, new) in edits {
                if let Some(slot) = v.pointer_mut(ptr) {
                    *slot = new;
                }
            }
            (true, v)
        });
    let ali = (
        "[a-z0-9]{1,10}",
        prop::collection::vec((prop::sample::select(ALI_KEYS), hostile_leaf()), 1..4),
    )
        .prop_map(|(id, edits)| {
            let mut bad = ali_item(&format!("prop-{id}"));
            for (k, new) in edits {
                bad[k] = new;
            }
            (
                false,
                Value::Array(vec![ali_item(&format!("ok-{id}")), bad]),
            )
        });
    prop_oneof![nx, ali]
}

#[test]
fn hostile_pushes_get_200_or_400_and_a_400_stores_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt.block_on(TestServer::start_with(pns_gateway::app::Settings {
        webhook_tokens: pns_gateway::http::WebhookTokens {
            nxcloud: Some(NX_TOKEN.into()),
            aliyun: Some(ALI_TOKEN.into()),
        },
        ..Default::default()
    }));
    let mut runner = TestRunner::new(Config {
        cases: 160,
        failure_persistence: None,
        ..Config::default()
    });
    let (ok, rejected) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let result = runner.run(&push(), |(nxcloud, body)| {
        let path = if nxcloud {
            format!("/webhooks/nxcloud/{NX_TOKEN}")
        } else {
            format!("/webhooks/aliyun/{ALI_TOKEN}")
        };
        rt.block_on(async {
            let before = latest(&s).await;
            let (status, reply) = post(&s, &path, &body.to_string()).await;
            match status {
                200 => ok.set(ok.get() + 1),
                400 => {
                    rejected.set(rejected.get() + 1);
                    let msg = reply["msg"].as_str().unwrap_or_default();
                    prop_assert!(!msg.is_empty() && msg.len() < 300, "reason: {reply}");
                    prop_assert_eq!(latest(&s).await, before, "a rejected push stored nothing");
                }
                other => {
                    return Err(TestCaseError::fail(format!(
                        "status {other}: {reply} for {body}"
                    )));
                }
            }
            Ok(())
        })
    });
    println!(
        "{} accepted, {} rejected on {}",
        ok.get(),
        rejected.get(),
        s.store.backend_name()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        ok.get() > 0 && rejected.get() > 0,
        "both outcomes were exercised"
    );
}
