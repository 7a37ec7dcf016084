//! `[webhooks] allow_networks` (issue 9 item 6): a push from outside the listed networks gets
//! 403 and stores nothing; from inside, it is served as usual. The test server's clients are
//! on 127.0.0.1.

use pns_gateway::{
    app::Settings,
    http::{AllowList, WebhookTokens},
};

use super::{latest, post};
use crate::carriers::ALI_TOKEN;
use crate::support::TestServer;

const RECEIPT: &str = r#"[{"call_id":"c1","phone_no":"13800000001","secret_no":"17000000001","call_type":0,"call_time":"2019-03-28 20:01:05"}]"#;

async fn server(networks: &[&str]) -> TestServer {
    let nets: Vec<String> = networks.iter().map(|n| n.to_string()).collect();
    TestServer::start_with(Settings {
        webhook_tokens: WebhookTokens {
            nxcloud: None,
            aliyun: Some(ALI_TOKEN.into()),
        },
        webhook_networks: AllowList::parse(&nets).unwrap(),
        ..Settings::default()
    })
    .await
}

#[tokio::test]
async fn a_push_from_outside_the_allowed_networks_gets_403_and_stores_nothing() {
    let s = server(&["10.0.0.0/8", "::1/128"]).await;
    let before = latest(&s).await;
    let (status, reply) = post(&s, &format!("/webhooks/aliyun/{ALI_TOKEN}"), RECEIPT).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["code"], 403);
    // Refused before the token is even looked at.
    let (status, _) = post(&s, "/webhooks/aliyun/wrong-token-0000000000", RECEIPT).await;
    assert_eq!(status, 403);
    assert_eq!(latest(&s).await, before, "nothing stored");
    // Probes are not webhooks: still served.
    let r = reqwest::get(format!("http://{}/livez", s.http_addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_push_from_an_allowed_network_is_served() {
    for nets in [&["127.0.0.1/32", "::1/128"][..], &["127.0.0.0/8"], &[]] {
        let s = server(nets).await;
        let before = latest(&s).await;
        let (status, reply) = post(&s, &format!("/webhooks/aliyun/{ALI_TOKEN}"), RECEIPT).await;
        assert_eq!(status, 200, "{nets:?}: {reply}");
        assert!(latest(&s).await > before, "{nets:?}: stored");
        // The token check still applies inside the allowed networks.
        let (status, _) = post(&s, "/webhooks/aliyun/wrong-token-0000000000", RECEIPT).await;
        assert_eq!(status, 401);
    }
}
