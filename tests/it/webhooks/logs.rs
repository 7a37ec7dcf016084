//! The webhook token is the carriers' only credential (issue 7 item 12): it never appears in
//! the logs, at any level, whatever the request (accepted, rejected, wrong token, unknown path).

use pns_gateway::app::Settings;
use pns_gateway::http::WebhookTokens;
use tracing_subscriber::fmt::format::FmtSpan;

use super::post;
use crate::carriers::{ALI_TOKEN, NX_TOKEN};
use crate::support::{TestServer, logs::Captured};

// A current-thread runtime (the `tokio::test` default): the server's tasks run on this thread,
// so the thread-scoped subscriber sees every span and event they emit.
#[tokio::test]
async fn the_webhook_token_never_appears_in_trace_level_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = TestServer::start_with(Settings {
        webhook_tokens: WebhookTokens {
            nxcloud: Some(NX_TOKEN.into()),
            aliyun: Some(ALI_TOKEN.into()),
        },
        ..Default::default()
    })
    .await;
    let ok = r#"[{"call_id":"c1","phone_no":"13800000001","secret_no":"17000000001","call_type":0,"call_time":"2019-03-28 20:01:05"}]"#;
    let cases = [
        (format!("/webhooks/aliyun/{ALI_TOKEN}"), ok, 200),
        (format!("/webhooks/aliyun/{ALI_TOKEN}"), "not json", 400),
        (
            format!("/webhooks/nxcloud/{NX_TOKEN}"),
            r#"{"callId":"n1"}"#,
            200,
        ),
        (
            format!("/webhooks/nxcloud/{NX_TOKEN}"),
            r#"{"callId":"a\u0000"}"#,
            400,
        ),
        (format!("/webhooks/aliyun/{ALI_TOKEN}x"), ok, 401),
        (format!("/webhooks/nxcloud/{ALI_TOKEN}"), ok, 401),
        (format!("/webhooks/aliyun/{ALI_TOKEN}/extra"), ok, 404),
        (format!("/webhooks/aliyun/{ALI_TOKEN}%FF"), ok, 400),
        (format!("//webhooks/aliyun/{ALI_TOKEN}"), ok, 404),
        (format!("/hooks/{NX_TOKEN}?token={ALI_TOKEN}"), ok, 404),
    ];
    for (path, body, want) in &cases {
        // Other tests of this binary run on other threads without a subscriber; a callsite they
        // registered while ours was being set may have cached "never": recompute.
        tracing::callsite::rebuild_interest_cache();
        let (status, reply) = post(&s, path, body).await;
        assert_eq!(status, *want, "{path}: {reply}");
    }
    drop(s);

    let text = logs.text();
    for token in [ALI_TOKEN, NX_TOKEN] {
        assert!(
            !text.contains(token),
            "the token {token} appears in the logs:\n{text}"
        );
    }
    assert!(
        text.contains("/webhooks/aliyun/***") && text.contains("/webhooks/nxcloud/***"),
        "the request spans were captured, with the token masked:\n{text}"
    );
}
