//! The NXCloud adapter against the fake NXCloud, over real HTTP. Success paths here, failure
//! paths in `failures`.

mod failures;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pns_gateway::domain::ExpireStrategy;
use pns_gateway::domain::provider::{
    Carrier, FailureClass, Outcome, UpstreamAxn, UpstreamRef, UpstreamXyb,
};
use pns_gateway::providers::nxcloud::{NxcloudCarrier, NxcloudConfig};
use serde_json::json;

use crate::support::fake_nxcloud::{FakeNxcloud, FakeNxcloudConfig};
use crate::support::md5::md5_hex;

const TIMEOUT: Duration = Duration::from_millis(400);
const SLOW: Duration = Duration::from_millis(1200);

fn config(base_url: String) -> NxcloudConfig {
    NxcloudConfig {
        base_url,
        business_id: "biz-1".into(),
        access_key: "fake-ak".into(),
        access_secret: "fake-secret".into(),
        timeout: TIMEOUT,
    }
}

async fn setup() -> (FakeNxcloud, NxcloudCarrier) {
    let fake = FakeNxcloud::start(FakeNxcloudConfig::default()).await;
    let carrier = NxcloudCarrier::new(config(fake.base_url()));
    (fake, carrier)
}

fn xyb(cid: &str) -> UpstreamXyb {
    UpstreamXyb {
        customer_bind_id: cid.into(),
        phone_b: "85264654798".into(),
        number_x: None,
        number_y: None,
        iso2_x: None,
        iso2_y: None,
        delayed_y: false,
        bind_expire_seconds: 300,
        bind_strategy: ExpireStrategy::Reset,
        call_in_expire_seconds: 3000,
        call_in_strategy: ExpireStrategy::Extend,
        customer_user_id: "dev-1".into(),
        recording: true,
        ext: "order-9".into(),
    }
}

fn axn(cid: &str) -> UpstreamAxn {
    UpstreamAxn {
        customer_bind_id: cid.into(),
        phone_a: "85254987987".into(),
        phone_b: None,
        extension: None,
        number_x: None,
        expect_city: None,
        expire_at: 0,
        expire_seconds: 600,
        recording: false,
        out_id: String::new(),
        ext: String::new(),
    }
}

#[tokio::test]
async fn bind_xyb_sends_signed_documented_request() {
    let (fake, carrier) = setup().await;
    let b = carrier.bind_xyb(&xyb("cb-1")).await.expect("bind");
    assert_eq!(
        (b.number_x.as_str(), b.number_y.as_deref()),
        ("85213135313", Some("85213135356"))
    );
    assert_eq!(b.extension, None);
    assert_eq!(fake.active_bindings()[0].bind_id, b.provider_binding_id);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/pns/bind/xyb");
    assert_eq!(r.header("accessKey"), Some("fake-ak"));
    assert_eq!(r.header("action"), Some("bindXYB"));
    assert_eq!(r.header("bizType"), Some("5"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let ts = r.header("ts").expect("ts");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now - ts.parse::<i64>().unwrap()).abs() < 10_000,
        "ts is epoch ms"
    );
    // The signature covers exactly the bytes that arrived.
    let mut signed =
        format!("accessKey=fake-ak&action=bindXYB&bizType=5&ts={ts}&body=").into_bytes();
    signed.extend_from_slice(&r.body);
    signed.extend_from_slice(b"&accessSecret=fake-secret");
    assert_eq!(r.header("sign"), Some(md5_hex(&signed).as_str()));

    assert_eq!(
        r.json(),
        json!({
            "businessId": "biz-1", "phoneB": "85264654798", "bindExpireSecond": 300,
            "customerUserId": "dev-1", "customerBindId": "cb-1", "recording": true,
            "bindExpireStrategy": 1, "callInExpireSecond": 3000, "callInExpireStrategy": 2, "ext": "order-9"
        })
    );
}

#[tokio::test]
async fn bind_xyb_passes_preferred_numbers_and_delayed_y() {
    let (fake, carrier) = setup().await;
    let mut req = xyb("cb-2");
    req.number_x = Some("85213135357".into());
    req.iso2_y = Some("HK".into());
    req.delayed_y = true;
    let b = carrier.bind_xyb(&req).await.expect("bind");
    assert_eq!((b.number_x.as_str(), b.number_y), ("85213135357", None));
    let body = fake.requests()[0].json();
    assert_eq!(
        (body["didX"].as_str(), body["iso2Y"].as_str()),
        (Some("85213135357"), Some("HK"))
    );
    assert_eq!(body["delayedGetY"], json!(true));
    assert!(body.get("didY").is_none() && body.get("iso2X").is_none());
}

#[tokio::test]
async fn bind_axe_returns_four_digit_extension() {
    let (fake, carrier) = setup().await;
    let b = carrier
        .bind_axn_extension(&axn("cb-axe"))
        .await
        .expect("bind");
    let ext = b.extension.expect("extension");
    assert!(
        ext.len() == 4 && ext.chars().all(|c| c.is_ascii_digit()),
        "{ext}"
    );
    assert_eq!(b.number_y, None);
    let r = &fake.requests()[0];
    assert_eq!(
        (r.path.as_str(), r.header("action")),
        ("/v1/pns/bind/axe", Some("bindAXE"))
    );
    assert_eq!(
        r.json(),
        json!({"businessId": "biz-1", "phoneA": "85254987987", "bindExpireSecond": 600, "customerBindId": "cb-axe", "recording": false})
    );
}

#[tokio::test]
async fn bind_axe_refuses_a_chosen_extension_without_calling() {
    let (fake, carrier) = setup().await;
    let mut req = axn("cb-e");
    req.extension = Some("1234".into());
    let e = carrier.bind_axn_extension(&req).await.unwrap_err();
    assert_eq!(
        (e.class, e.outcome),
        (FailureClass::InvalidArgument, Outcome::Definite)
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn unbind_uses_legacy_action_endpoint() {
    let (fake, carrier) = setup().await;
    let b = carrier.bind_xyb(&xyb("cb-u")).await.expect("bind");
    let r = UpstreamRef {
        provider_binding_id: b.provider_binding_id.clone(),
        number_x: b.number_x,
    };
    carrier.unbind(&r).await.expect("unbind");
    assert!(fake.active_bindings().is_empty());
    let req = &fake.requests()[1];
    assert_eq!(
        (req.path.as_str(), req.header("action")),
        ("/v1/api/pns/", Some("unbindAXB"))
    );
    assert_eq!(req.json(), json!({ "bindId": b.provider_binding_id }));

    // A second unbind: NXCloud no longer knows it.
    let e = carrier.unbind(&r).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str(), e.outcome),
        (FailureClass::NotFound, "10013", Outcome::Definite)
    );
}

#[test]
fn config_debug_redacts_the_secret() {
    let s = format!("{:?}", config("http://x".into()));
    assert!(!s.contains("fake-secret") && s.contains("redacted"), "{s}");
}
