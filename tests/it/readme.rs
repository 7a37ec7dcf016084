//! README's walkthrough, verbatim: every `grpcurl` command README shows (up to the carrier
//! sections, which need real carrier accounts) is read from README.md, run in order against a
//! fresh real server through a reflection-driven client, and its answer compared with the output
//! README prints beneath it — so README cannot drift from what the server does.
//!
//! Comparison: every `"key": value` README shows must be in the answer (at any depth; a value
//! ending in `…` or `...` is a prefix). Generated ids and clock times are skipped, except an
//! `expireTime` the request itself set. An `ERROR:` block must match code, message and each
//! detail; an event-stream block must match event for event, with nothing more. A trailing
//! `# -> key value, key value` comment is checked the same way.

#[path = "readme/dynamic.rs"]
mod dynamic;
#[path = "readme/shell.rs"]
mod shell;

use std::time::Duration;

use dynamic::{Answer, DynClient};
use serde_json::Value;
use shell::{Step, pairs};

use crate::support::TestServer;

const README: &str = include_str!("../../README.md");

/// Values README cannot know in advance.
const VOLATILE: &[&str] = &["bindingId", "createTime", "updateTime", "expireTime"];

/// Every (key, scalar) in `v`, at any depth; scalars as README prints them.
fn flatten(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match x {
                    Value::String(s) => out.push((k.clone(), s.clone())),
                    Value::Number(n) => out.push((k.clone(), n.to_string())),
                    Value::Bool(b) => out.push((k.clone(), b.to_string())),
                    _ => flatten(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        _ => {}
    }
}

fn matches(expected: &str, actual: &str) -> bool {
    let prefix = expected
        .strip_suffix('…')
        .or_else(|| expected.strip_suffix("..."));
    match prefix {
        Some(p) => actual.starts_with(p),
        None => expected == actual,
    }
}

/// Checks every expected pair against `actual`; `request` decides whether expireTime counts.
fn check_pairs(step: &Step, want: &[(String, String)], actual: &Value, request: &str) {
    let mut have = Vec::new();
    flatten(actual, &mut have);
    for (k, v) in want {
        if v == "…" || v == "..." {
            continue;
        }
        if VOLATILE.contains(&k.as_str()) && !(k == "expireTime" && request.contains("expire_time"))
        {
            continue;
        }
        assert!(
            have.iter().any(|(hk, hv)| hk == k && matches(v, hv)),
            "README line {}: `{}` should answer \"{k}\": {v:?}; the server answered {actual:#}",
            step.line,
            step.command.words.join(" ")
        );
    }
}

/// `# -> connectTo 85291112222, displayNumber 85213135301`
fn comment_pairs(comment: &str) -> Vec<(String, String)> {
    comment
        .strip_prefix("->")
        .map(|rest| {
            rest.split(',')
                .filter_map(|p| {
                    let mut w = p.split_whitespace();
                    Some((w.next()?.to_owned(), w.next()?.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn readme_walkthrough_runs_verbatim_with_the_results_readme_shows() {
    let steps = shell::grpcurl_steps(README, "## Carrier pushes");
    assert!(
        steps.len() >= 10,
        "README's walkthrough has too few grpcurl commands: {}",
        steps.len()
    );
    let s = TestServer::start().await;
    let mut client = DynClient::new(s.channel.clone()).await;
    for step in &steps {
        let w = &step.command.words;
        let cmd = w.join(" ");
        assert!(w.iter().any(|x| x == "-plaintext"), "{cmd}: -plaintext");
        let at = w
            .iter()
            .position(|x| x == "localhost:50051")
            .unwrap_or_else(|| {
                panic!(
                    "README line {}: {cmd} does not address localhost:50051",
                    step.line
                )
            });
        let rest = &w[at + 1..];
        match rest.first().map(String::as_str) {
            Some("list") => {
                let expected: Vec<String> = step
                    .expected
                    .as_deref()
                    .expect("list shows its output")
                    .lines()
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty())
                    .collect();
                assert_eq!(client.list().await, expected, "README line {}", step.line);
            }
            Some(method) => {
                let data = w
                    .iter()
                    .position(|x| x == "-d")
                    .map(|i| w[i + 1].clone())
                    .unwrap_or_else(|| "{}".into());
                let answer = client
                    .call(method, &data, Duration::from_millis(1500))
                    .await;
                check_answer(step, &data, answer);
            }
            None => panic!("README line {}: {cmd}: no method", step.line),
        }
    }
}

fn check_answer(step: &Step, data: &str, answer: Answer) {
    let cmd = step.command.words.join(" ");
    let expected = step.expected.as_deref().unwrap_or("");
    let comment = step
        .command
        .comment
        .as_deref()
        .map(comment_pairs)
        .unwrap_or_default();
    match answer {
        Answer::Err {
            code,
            message,
            details,
        } => {
            assert!(
                expected.trim_start().starts_with("ERROR:"),
                "README line {}: `{cmd}` failed with {code:?} {message:?} {details:?}",
                step.line
            );
            let field = |name: &str| {
                expected
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
                    .unwrap_or_else(|| panic!("README ERROR block lacks {name}"))
            };
            assert_eq!(
                format!("{code:?}"),
                field("Code:"),
                "README line {}",
                step.line
            );
            assert_eq!(message, field("Message:"), "README line {}", step.line);
            let shown = expected.split_once("Details:").map_or("", |(_, d)| d);
            check_pairs(step, &pairs(shown), &Value::Array(details), data);
        }
        Answer::Ok(msgs) => {
            assert!(
                !expected.trim_start().starts_with("ERROR:"),
                "README line {}: `{cmd}` should fail as README shows, but succeeded",
                step.line
            );
            if msgs.len() == 1 {
                check_pairs(step, &pairs(expected), &msgs[0], data);
                check_pairs(step, &comment, &msgs[0], data);
            } else {
                // A stream: README shows one message per line.
                let lines: Vec<&str> = expected
                    .lines()
                    .filter(|l| l.trim_start().starts_with('{'))
                    .collect();
                assert_eq!(
                    lines.len(),
                    msgs.len(),
                    "README line {}: `{cmd}` shows {} messages, the server streamed {}: {msgs:#?}",
                    step.line,
                    lines.len(),
                    msgs.len()
                );
                for (line, msg) in lines.iter().zip(&msgs) {
                    check_pairs(step, &pairs(line), msg, data);
                }
            }
        }
    }
}

/// `grpcurl -v` decodes error details with the types reflection describes: the google.rpc
/// detail types must be among them (issue: "symbol 'google.rpc.BadRequest' not found").
#[tokio::test]
async fn reflection_describes_the_error_detail_types() {
    let s = TestServer::start().await;
    let mut client = DynClient::new(s.channel.clone()).await;
    for symbol in [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
        "google.rpc.RetryInfo",
        "google.rpc.Status",
    ] {
        client
            .learn(symbol)
            .await
            .unwrap_or_else(|e| panic!("reflection does not know {symbol}: {e}"));
    }
    // And a real error decodes through it.
    match client
        .call(
            "pns.v1.BindingService/BindXyb",
            r#"{"pool_key":"demo","phone_b":"12"}"#,
            Duration::ZERO,
        )
        .await
    {
        Answer::Err { code, details, .. } => {
            assert_eq!(code, tonic::Code::InvalidArgument);
            let types: Vec<&str> = details.iter().filter_map(|d| d["@type"].as_str()).collect();
            assert!(
                types.contains(&"type.googleapis.com/google.rpc.BadRequest"),
                "{details:?}"
            );
            assert!(
                types.contains(&"type.googleapis.com/google.rpc.ErrorInfo"),
                "{details:?}"
            );
        }
        Answer::Ok(m) => panic!("accepted {m:?}"),
    }
}
