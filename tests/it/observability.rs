//! Operations (issue 10 items 1 and 2): Prometheus metrics at `GET /metrics` and request ids on
//! every RPC and HTTP request.
//!
//! The `metrics` recorder is global to the process and the tests of this binary run servers in
//! parallel, so the assertions use deltas of counters (which only grow) and labels no other test
//! uses (a pool key of its own).

mod metrics;
mod request_ids;

use std::collections::BTreeMap;

use crate::support::TestServer;

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape: samples plus the `# HELP` / `# TYPE` lines by metric name.
#[derive(Debug, Default)]
pub(crate) struct Scrape {
    pub samples: Vec<Sample>,
    pub help: BTreeMap<String, String>,
    pub kind: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the text exposition format (0.0.4), panicking on any line it cannot read.
    pub(crate) fn parse(text: &str) -> Self {
        let mut out = Scrape::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP line");
                out.help.insert(name.into(), help.into());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                out.kind.insert(name.into(), kind.into());
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value of {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    (name.to_owned(), parse_labels(body))
                }
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "metric name {name:?}"
            );
            out.samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        out
    }

    /// The sum of every sample of `name` whose labels include `labels` (0 when none).
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether some sample of `name` has all of `labels`.
    pub(crate) fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// `a="x",b="y"` with `\\`, `\"` and `\n` escapes.
fn parse_labels(body: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} is quoted");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("dangling escape"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim().to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// `GET /metrics` of `s`, parsed.
pub(crate) async fn scrape(s: &TestServer) -> Scrape {
    let r = reqwest::get(format!("http://{}/metrics", s.http_addr))
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    Scrape::parse(&r.text().await.expect("body"))
}

#[test]
fn the_parser_reads_labels_escapes_and_special_values() {
    let s = Scrape::parse(
        "# HELP x_total A counter\n# TYPE x_total counter\n\
         x_total{a=\"1\",b=\"q\\\"uote\"} 3\nx_total{a=\"2\"} 4\ny 1e3\nz{le=\"+Inf\"} +Inf\n",
    );
    assert_eq!(s.sum("x_total", &[]), 7.0);
    assert_eq!(s.sum("x_total", &[("b", "q\"uote")]), 3.0);
    assert_eq!(s.sum("y", &[]), 1000.0);
    assert!(s.has("z", &[("le", "+Inf")]));
    assert_eq!(s.kind["x_total"], "counter");
    assert!(!s.has("x_total", &[("a", "3")]));
}
