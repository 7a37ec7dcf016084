//! Strings: NUL and control characters (item 7), unbounded and echoed values (item 8),
//! UpdateBinding's free text and the list/watch filters (item 10).

use pns_gateway::grpc::pb;
use tonic::Code;
use tonic_types::StatusExt;

use super::{A, B, POOL, expect, huge, rejected, seeded, show, snapshot};
use crate::support::fixtures::*;

const NUL: &str = "a\u{0}b";

#[tokio::test]
async fn nul_and_control_characters_in_stored_fields_are_rejected_and_store_nothing() {
    let (s, b) = seeded().await;
    let before = snapshot(&s).await;
    let (mut bind, mut calls, mut pools) = (s.bindings(), s.calls(), s.pools());

    for (field, set) in [
        (
            "pool_key",
            (|r, v| r.pool_key = v) as fn(&mut pb::BindXybRequest, String),
        ),
        ("customer_bind_id", |r, v| r.customer_bind_id = v),
        ("customer_user_id", |r, v| r.customer_user_id = v),
        ("ext", |r, v| r.ext = v),
    ] {
        let mut r = xyb(POOL, B);
        set(&mut r, NUL.into());
        let st = bind.bind_xyb(r).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &[field]);
        // pool_key has its own (stricter) character set; free text says what is wrong.
        let why = &st.get_details_bad_request().unwrap().field_violations[0].description;
        assert!(field == "pool_key" || why.contains("NUL"), "{}", show(&st));
    }

    for (field, value, set) in [
        (
            "ext",
            NUL,
            (|r, v| r.ext = v) as fn(&mut pb::BindAxnExtensionRequest, String),
        ),
        ("out_id", "order\n42", |r, v| r.out_id = v),
        ("expect_city", NUL, |r, v| r.expect_city = v),
        ("customer_bind_id", "id\u{1b}[31m", |r, v| {
            r.customer_bind_id = v
        }),
        ("customer_user_id", "user\u{7f}", |r, v| {
            r.customer_user_id = v
        }),
    ] {
        let mut r = axn(POOL, A, 3600);
        set(&mut r, value.into());
        let st = bind.bind_axn_extension(r).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &[field]);
    }

    // Descriptive `ext` keeps its newlines and tabs; ids never take them.
    let mut r = axn(POOL, "85291110000", 3600);
    r.ext = "line 1\nline\t2".into();
    r.customer_bind_id = "li\nne".into();
    let st = bind.bind_axn_extension(r).await.unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["customer_bind_id"]);

    for (field, value, set) in [
        (
            "ext",
            NUL,
            (|r, v| r.ext = Some(v)) as fn(&mut pb::UpdateBindingRequest, String),
        ),
        ("customer_user_id", NUL, |r, v| r.customer_user_id = Some(v)),
        ("out_id", "x\ry", |r, v| r.out_id = Some(v)),
    ] {
        let mut r = pb::UpdateBindingRequest {
            binding_id: b.binding_id.clone(),
            ..Default::default()
        };
        set(&mut r, value.into());
        let st = bind.update_binding(r).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &[field]);
    }

    let st = calls
        .notify_call_in(pb::NotifyCallInRequest {
            caller: A.into(),
            called: b.number_x.clone(),
            extension: String::new(),
            call_id: NUL.into(),
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["call_id"]);

    let report = |call_id: &str, leg: &str, url: &str| pb::ReportCallEventRequest {
        call_id: call_id.into(),
        kind: pb::CallEventKind::RecordingReady as i32,
        leg: leg.into(),
        recording_url: url.into(),
        ..Default::default()
    };
    let url = "https://rec.example/1.mp3";
    for (field, r) in [
        ("call_id", report(NUL, "", url)),
        ("leg", report("call-1", NUL, url)),
        (
            "recording_url",
            report("call-1", "", "https://rec.example/\u{0}"),
        ),
        (
            "recording_url",
            report("call-1", "", "https://rec.example/a\nb"),
        ),
    ] {
        let st = calls.report_call_event(r).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &[field]);
    }

    let st = pools
        .create_pool(pb::CreatePoolRequest {
            pool_key: NUL.into(),
            provider: pb::Provider::Local as i32,
            tenants: Vec::new(),
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["pool_key"]);
    let st = pools
        .add_numbers(pb::AddNumbersRequest {
            pool_key: POOL.into(),
            numbers: vec![pb::NumberSpec {
                number: "85290009999".into(),
                iso2: "HK".into(),
                city: NUL.into(),
            }],
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["numbers[0].city"]);

    assert_eq!(
        snapshot(&s).await,
        before,
        "rejected requests stored nothing"
    );
}

#[tokio::test]
async fn every_violation_of_a_request_is_reported_at_once() {
    let (s, _) = seeded().await;
    let before = snapshot(&s).await;
    let mut r = axn(POOL, "12ab", 3600);
    r.pool_key = "no/such pool".into();
    r.ext = NUL.into();
    r.out_id = "o".repeat(129);
    r.customer_user_id = "u\u{1}".into();
    r.expect_city = "c".repeat(65);
    r.expire_time = Some(prost_types::Timestamp {
        seconds: 1,
        nanos: 2_000_000_000,
    });
    let st = s.bindings().bind_axn_extension(r).await.unwrap_err();
    let mut got = violated_fields(&st);
    got.sort();
    assert_eq!(
        got,
        [
            "customer_user_id",
            "expect_city",
            "expire_time.nanos",
            "ext",
            "out_id",
            "phone_a",
            "pool_key"
        ],
        "{}",
        show(&st)
    );
    assert_eq!(st.code(), Code::InvalidArgument);
    assert_eq!(snapshot(&s).await, before);
}

#[tokio::test]
async fn a_3_mb_pool_key_or_field_gets_a_small_invalid_argument_not_a_metadata_overflow() {
    let (s, b) = seeded().await;
    let before = snapshot(&s).await;
    let k = huge();
    let (mut bind, mut calls, mut pools) = (s.bindings(), s.calls(), s.pools());

    let st = pools
        .get_pool_stats(pb::GetPoolStatsRequest {
            pool_key: k.clone(),
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["pool_key"]);
    let st = bind.bind_xyb(xyb(&k, B)).await.unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["pool_key"]);
    let st = bind.bind_axn_extension(axn(&k, A, 3600)).await.unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["pool_key"]);
    let st = bind
        .list_bindings(pb::ListBindingsRequest {
            pool_key: k.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["pool_key"]);
    let st = pools
        .list_numbers(pb::ListNumbersRequest {
            pool_key: k.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["pool_key"]);
    let st = pools
        .create_pool(pb::CreatePoolRequest {
            pool_key: k.clone(),
            provider: 1,
            tenants: Vec::new(),
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["pool_key"]);
    let st = calls
        .watch_events(pb::WatchEventsRequest {
            pool_key: k.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["pool_key"]);

    // Other fields, including the ones an error used to echo (event kinds).
    let mut r = xyb(POOL, B);
    r.customer_bind_id = k.clone();
    let st = bind.bind_xyb(r).await.unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["customer_bind_id"]);
    let st = bind
        .update_binding(pb::UpdateBindingRequest {
            binding_id: b.binding_id.clone(),
            ext: Some(k.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["ext"]);
    let st = calls
        .watch_events(pb::WatchEventsRequest {
            kinds: vec![k.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["kinds[0]"]);
    let st = calls
        .report_call_event(pb::ReportCallEventRequest {
            call_id: k.clone(),
            kind: pb::CallEventKind::Hangup as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["call_id"]);
    let st = bind
        .get_binding(pb::GetBindingRequest {
            customer_bind_id: k.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["customer_bind_id"]);

    assert_eq!(snapshot(&s).await, before);
}

#[tokio::test]
async fn errors_that_name_client_values_echo_a_bounded_excerpt() {
    let (s, _) = seeded().await;
    // The longest valid pool key that does not exist: NOT_FOUND names it, in full (64 chars).
    let key = "k".repeat(64);
    let st = s
        .pools()
        .get_pool_stats(pb::GetPoolStatsRequest {
            pool_key: key.clone(),
        })
        .await
        .unwrap_err();
    expect(&st, Code::NotFound, "POOL_NOT_FOUND");
    assert_eq!(
        st.get_details_error_info().unwrap().metadata["pool_key"],
        key
    );

    // A 128-char customer_bind_id replayed with another payload: the conflict echoes 64 chars.
    let id = "c".repeat(128);
    let mut r = axn(POOL, A, 3600);
    r.customer_bind_id = id.clone();
    s.bindings().bind_axn_extension(r.clone()).await.unwrap();
    r.ext = "other payload".into();
    let st = s.bindings().bind_axn_extension(r).await.unwrap_err();
    expect(&st, Code::AlreadyExists, "CUSTOMER_BIND_ID_CONFLICT");
    let echoed = &st.get_details_error_info().unwrap().metadata["customer_bind_id"];
    assert_eq!(echoed, &format!("{}…", "c".repeat(64)));
    assert!(!st.message().contains(&id), "{}", show(&st));

    // 500 invalid numbers: every one is wrong, the trailer stays small and says how many.
    let numbers = (0..500)
        .map(|i| pb::NumberSpec {
            number: format!("bad-{i}"),
            iso2: "HK".into(),
            city: String::new(),
        })
        .collect();
    let before = snapshot(&s).await;
    let st = s
        .pools()
        .add_numbers(pb::AddNumbersRequest {
            pool_key: POOL.into(),
            numbers,
        })
        .await
        .unwrap_err();
    expect(&st, Code::InvalidArgument, "MOBILE_NUMBER_ILLEGAL");
    let shown = st.get_details_bad_request().unwrap().field_violations.len();
    assert!((1..500).contains(&shown), "{}", show(&st));
    assert!(st.message().ends_with("more violations"), "{}", show(&st));
    assert_eq!(
        st.get_details_error_info().unwrap().metadata["violation_count"],
        "500"
    );
    assert_eq!(snapshot(&s).await, before);
}

#[tokio::test]
async fn update_binding_bounds_its_fields_like_bind() {
    let (s, b) = seeded().await;
    let before = snapshot(&s).await;
    let mut bind = s.bindings();
    let update = |f: fn(&mut pb::UpdateBindingRequest)| {
        let mut r = pb::UpdateBindingRequest {
            binding_id: b.binding_id.clone(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    for (field, r) in [
        ("ext", update(|r| r.ext = Some("e".repeat(513)))),
        (
            "customer_user_id",
            update(|r| r.customer_user_id = Some("u".repeat(129))),
        ),
        ("out_id", update(|r| r.out_id = Some("o".repeat(129)))),
    ] {
        let st = bind.update_binding(r).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &[field]);
    }
    // All three at once, with a bad phone_b too.
    let st = bind
        .update_binding(update(|r| {
            r.ext = Some(huge());
            r.customer_user_id = Some("\0".into());
            r.out_id = Some("o".repeat(129));
            r.phone_b = Some("12ab".into());
        }))
        .await
        .unwrap_err();
    let mut f = violated_fields(&st);
    f.sort();
    assert_eq!(
        f,
        ["customer_user_id", "ext", "out_id", "phone_b"],
        "{}",
        show(&st)
    );
    assert_eq!(snapshot(&s).await, before);

    // At the limits, the update is stored.
    let r = bind
        .update_binding(update(|r| {
            r.ext = Some("é".repeat(512));
            r.out_id = Some("o".repeat(128));
        }))
        .await
        .expect("update at the limits")
        .into_inner()
        .binding
        .unwrap();
    assert_eq!(r.ext.chars().count(), 512);
    assert_eq!(r.out_id.len(), 128);
}

#[tokio::test]
async fn list_and_watch_filters_are_bounded_and_validated() {
    let (s, _) = seeded().await;
    let mut bind = s.bindings();
    for (field, r) in [
        (
            "customer_user_id",
            pb::ListBindingsRequest {
                customer_user_id: "u\0".into(),
                ..Default::default()
            },
        ),
        (
            "customer_user_id",
            pb::ListBindingsRequest {
                customer_user_id: "u".repeat(129),
                ..Default::default()
            },
        ),
        (
            "pool_key",
            pb::ListBindingsRequest {
                pool_key: "p q".into(),
                ..Default::default()
            },
        ),
        (
            "page_size",
            pb::ListBindingsRequest {
                page_size: -1,
                ..Default::default()
            },
        ),
        (
            "state",
            pb::ListBindingsRequest {
                state: 99,
                ..Default::default()
            },
        ),
    ] {
        let st = bind.list_bindings(r).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &[field]);
    }

    let mut calls = s.calls();
    for (field, r) in [
        (
            "pool_key",
            pb::WatchEventsRequest {
                pool_key: "p\0".into(),
                ..Default::default()
            },
        ),
        (
            "customer_user_id",
            pb::WatchEventsRequest {
                customer_user_id: "u".repeat(129),
                ..Default::default()
            },
        ),
        (
            "binding_id",
            pb::WatchEventsRequest {
                binding_id: "not-a-uuid".into(),
                ..Default::default()
            },
        ),
        (
            "kinds",
            pb::WatchEventsRequest {
                kinds: vec!["call.hangup".into(); 33],
                ..Default::default()
            },
        ),
    ] {
        let st = calls.watch_events(r).await.unwrap_err();
        rejected(&st, "INVALID_ARGUMENT", &[field]);
    }
}

#[tokio::test]
async fn add_numbers_create_pool_and_set_number_state_validate_every_field() {
    let (s, _) = seeded().await;
    let before = snapshot(&s).await;
    let mut pools = s.pools();
    let spec = |number: &str, iso2: &str, city: &str| pb::NumberSpec {
        number: number.into(),
        iso2: iso2.into(),
        city: city.into(),
    };
    let st = pools
        .add_numbers(pb::AddNumbersRequest {
            pool_key: POOL.into(),
            numbers: vec![
                spec("85290008881", "HKG", ""),
                spec("85290008882", "HK", &"c".repeat(65)),
                spec("85290008883", "H\u{0}", "Kowloon"),
            ],
        })
        .await
        .unwrap_err();
    rejected(
        &st,
        "INVALID_ARGUMENT",
        &["numbers[0].iso2", "numbers[1].city", "numbers[2].iso2"],
    );
    let st = pools
        .add_numbers(pb::AddNumbersRequest {
            pool_key: POOL.into(),
            numbers: (0..10_001)
                .map(|i| spec(&format!("8529{i:07}"), "HK", ""))
                .collect(),
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["numbers"]);

    let st = pools
        .create_pool(pb::CreatePoolRequest {
            pool_key: "p".repeat(65),
            provider: 99,
            tenants: Vec::new(),
        })
        .await
        .unwrap_err();
    rejected(&st, "INVALID_ARGUMENT", &["pool_key", "provider"]);

    let st = pools
        .set_number_state(pb::SetNumberStateRequest {
            pool_key: "p\0".into(),
            number: "8529\u{0}".into(),
            state: 99,
        })
        .await
        .unwrap_err();
    let mut f = violated_fields(&st);
    f.sort();
    assert_eq!(f, ["number", "pool_key", "state"], "{}", show(&st));
    assert_eq!(snapshot(&s).await, before);
}
