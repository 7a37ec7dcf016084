//! Timestamps and numbers (item 9): overflow, out-of-range seconds and nanos are rejected with
//! a precise field, never multiplied into a wrapped "tomorrow".

use pns_gateway::grpc::pb;
use prost_types::Timestamp;

use super::{POOL, rejected, seeded, show, snapshot};
use crate::support::fixtures::*;

fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

/// (timestamp, the field violated under `expire_time`)
fn hostile() -> Vec<(Option<Timestamp>, &'static str)> {
    let tomorrow = ts_in(86_400).seconds;
    vec![
        // 645636044375992648 * 1000 wraps to about tomorrow in i64 arithmetic.
        (ts(645_636_044_375_992_648, 0), "seconds"),
        (ts(i64::MAX, 0), "seconds"),
        (ts(i64::MIN, 0), "seconds"),
        (ts(253_402_300_800, 0), "seconds"),
        (ts(-62_135_596_801, 0), "seconds"),
        (ts(tomorrow, 2_000_000_000), "nanos"),
        (ts(tomorrow, -1), "nanos"),
        (ts(tomorrow, 1_000_000_000), "nanos"),
    ]
}

#[tokio::test]
async fn overflowing_and_absurd_expire_times_are_expire_date_illegal() {
    let (s, b) = seeded().await;
    let before = snapshot(&s).await;
    let mut bind = s.bindings();
    for (t, part) in hostile() {
        let field = format!("expire_time.{part}");
        let mut r = axn(POOL, "85291110000", 0);
        r.expire_time = t;
        let st = bind.bind_axn_extension(r).await.unwrap_err();
        rejected(&st, "EXPIRE_DATE_ILLEGAL", &[&field]);
        let st = bind
            .update_binding(pb::UpdateBindingRequest {
                binding_id: b.binding_id.clone(),
                expire_time: t,
                ..Default::default()
            })
            .await
            .unwrap_err();
        rejected(&st, "EXPIRE_DATE_ILLEGAL", &[&field]);
    }
    // i64::MAX used to be told "at least 1 minute in the future".
    let mut r = axn(POOL, "85291110000", 0);
    r.expire_time = ts(i64::MAX, 0);
    let st = bind.bind_axn_extension(r).await.unwrap_err();
    assert!(st.message().contains("9999-12-31"), "{}", show(&st));
    // Valid Timestamps outside the business window keep their own messages.
    let mut r = axn(POOL, "85291110000", 0);
    r.expire_time = ts(253_402_300_799, 999_999_999);
    let st = bind.bind_axn_extension(r).await.unwrap_err();
    rejected(&st, "EXPIRE_DATE_ILLEGAL", &["expire_time"]);
    assert!(st.message().contains("10 years"), "{}", show(&st));
    assert_eq!(
        snapshot(&s).await,
        before,
        "rejected requests stored nothing"
    );
}

#[tokio::test]
async fn expire_seconds_are_range_checked() {
    let (s, _) = seeded().await;
    let before = snapshot(&s).await;
    let mut bind = s.bindings();
    for secs in [-1, 59, i64::MAX, i64::MIN, 10 * 366 * 24 * 3600 + 1] {
        let mut r = xyb(POOL, B2);
        r.bind_expire_seconds = secs;
        r.call_in_expire_seconds = secs;
        let st = bind.bind_xyb(r).await.unwrap_err();
        rejected(
            &st,
            "EXPIRE_DATE_ILLEGAL",
            &["bind_expire_seconds", "call_in_expire_seconds"],
        );
    }
    assert_eq!(snapshot(&s).await, before);
}

const B2: &str = "85264650000";

#[tokio::test]
async fn call_report_times_and_numbers_are_range_checked() {
    let (s, _) = seeded().await;
    let before = snapshot(&s).await;
    let mut calls = s.calls();
    let hangup = || pb::ReportCallEventRequest {
        call_id: "call-1".into(),
        kind: pb::CallEventKind::Hangup as i32,
        duration_seconds: 10,
        ..Default::default()
    };
    for (t, part) in hostile() {
        for (name, set) in [
            (
                "time",
                (|r, t| r.time = t) as fn(&mut pb::ReportCallEventRequest, _),
            ),
            ("answer_time", |r, t| r.answer_time = t),
            ("end_time", |r, t| r.end_time = t),
        ] {
            let mut r = hangup();
            set(&mut r, t);
            let st = calls.report_call_event(r).await.unwrap_err();
            rejected(&st, "INVALID_ARGUMENT", &[&format!("{name}.{part}")]);
        }
    }
    // Valid Timestamps, absurd for a call: before 2000, or more than a day ahead.
    for t in [ts(0, 0), ts(946_684_799, 0), ts_in(2 * 86_400).into()] {
        let mut r = hangup();
        r.end_time = t;
        let st = calls.report_call_event(r).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &["end_time"]);
    }
    for (field, set) in [
        (
            "duration_seconds",
            (|r| r.duration_seconds = -1) as fn(&mut pb::ReportCallEventRequest),
        ),
        ("duration_seconds", |r| r.duration_seconds = i64::MAX),
        ("release_cause", |r| r.release_cause = 128),
        ("release_cause", |r| r.release_cause = -1),
        ("release_direction", |r| r.release_direction = 9),
        ("kind", |r| r.kind = 99),
    ] {
        let mut r = hangup();
        set(&mut r);
        let st = calls.report_call_event(r).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &[field]);
    }
    assert_eq!(
        snapshot(&s).await,
        before,
        "rejected reports stored nothing"
    );

    // A plausible report is stored.
    let mut r = hangup();
    r.answer_time = ts_in(-20).into();
    r.end_time = ts_in(-10).into();
    let ok = calls.report_call_event(r).await.expect("valid report");
    assert!(!ok.into_inner().duplicate);
}
