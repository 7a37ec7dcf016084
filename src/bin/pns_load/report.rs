//! One row per measurement: the human table and the `--json` lines.

use std::{collections::BTreeMap, sync::OnceLock};

use serde_json::json;

use super::driver::RunResult;

/// Server processes of a `--replicas` run (channel `c` talks to replica `c % n`); unset or 1:
/// one server, no per-replica rows.
pub(crate) static REPLICAS: OnceLock<usize> = OnceLock::new();

/// One replica's share of a row.
pub(crate) struct Share {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

/// A measured row. `scenario` names the scenario, `phase` the part of it (e.g. `empty-seq`).
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) phase: String,
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    pub(crate) exhausted: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) elapsed_s: f64,
    /// In-flight requests while measuring.
    pub(crate) in_flight: usize,
    pub(crate) note: String,
    /// Unique-index violations the in-process server met during the scenario.
    pub(crate) unique_violations: Option<u64>,
    /// Resident memory (MiB) of each server process after the scenario.
    pub(crate) server_rss_mib: Vec<f64>,
    /// Per replica, with `--replicas` > 1.
    pub(crate) replicas: Vec<Share>,
}

impl Row {
    pub(crate) fn new(scenario: &str, phase: &str, in_flight: usize, r: &RunResult) -> Self {
        Row {
            scenario: scenario.to_owned(),
            phase: phase.to_owned(),
            requests: r.requests(),
            ok: r.ok,
            exhausted: r.exhausted,
            errors: r.errors.clone(),
            rps: r.rps(),
            p50_ms: r.quantile_ms(0.50),
            p99_ms: r.quantile_ms(0.99),
            max_ms: r.max_ms(),
            elapsed_s: r.elapsed.as_secs_f64(),
            in_flight,
            note: String::new(),
            unique_violations: None,
            server_rss_mib: Vec::new(),
            replicas: match REPLICAS.get() {
                Some(&n) if n > 1 => r
                    .grouped(n)
                    .iter()
                    .map(|g| Share {
                        ok: g.ok,
                        errors: g.error_count(),
                        rps: g.rps(),
                        p50_ms: g.quantile_ms(0.50),
                        p99_ms: g.quantile_ms(0.99),
                    })
                    .collect(),
                _ => Vec::new(),
            },
        }
    }

    fn rss_text(&self) -> String {
        match self.server_rss_mib.as_slice() {
            [] => "n/a".into(),
            [one] => format!("{one:.0}"),
            many => many
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join("+"),
        }
    }

    pub(crate) fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn error_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        let detail: Vec<String> = self
            .errors
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect();
        format!("{} ({})", self.error_count(), detail.join(", "))
    }

    pub(crate) fn json(&self, health_rps: Option<f64>, meta: &serde_json::Value) -> String {
        json!({
            "scenario": self.scenario,
            "phase": self.phase,
            "requests": self.requests,
            "ok": self.ok,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "errors": self.error_count(),
            "error_codes": self.errors,
            "no_available_number": self.exhausted,
            "ratio_to_health": health_rps.filter(|h| *h > 0.0).map(|h| round(self.rps / h, 4)),
            "elapsed_s": round(self.elapsed_s, 3),
            "in_flight": self.in_flight,
            "note": self.note,
            "unique_violations_in_scenario": self.unique_violations,
            "server_rss_mib": self.server_rss_mib.iter().map(|m| round(*m, 1)).collect::<Vec<_>>(),
            "replicas": self.replicas.iter().map(|s| json!({
                "ok": s.ok,
                "errors": s.errors,
                "rps": round(s.rps, 1),
                "ratio_to_health": health_rps.filter(|h| *h > 0.0).map(|h| round(s.rps / h, 4)),
                "p50_ms": round(s.p50_ms, 3),
                "p99_ms": round(s.p99_ms, 3),
            })).collect::<Vec<_>>(),
            "run": meta,
        })
        .to_string()
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

/// The human table.
pub(crate) fn table(rows: &[Row], health_rps: Option<f64>) -> String {
    let head = [
        "scenario",
        "phase",
        "in-flight",
        "ok",
        "req/s",
        "× health",
        "p50 ms",
        "p99 ms",
        "max ms",
        "no-number",
        "errors",
        "RSS MiB",
    ];
    let mut cells: Vec<Vec<String>> = vec![head.iter().map(|s| (*s).to_owned()).collect()];
    for r in rows {
        cells.push(vec![
            r.scenario.clone(),
            r.phase.clone(),
            r.in_flight.to_string(),
            r.ok.to_string(),
            format!("{:.0}", r.rps),
            match health_rps {
                Some(h) if h > 0.0 => format!("{:.3}", r.rps / h),
                _ => "n/a".into(),
            },
            format!("{:.2}", r.p50_ms),
            format!("{:.2}", r.p99_ms),
            format!("{:.2}", r.max_ms),
            r.exhausted.to_string(),
            r.error_text(),
            r.rss_text(),
        ]);
        for (k, sh) in r.replicas.iter().enumerate() {
            cells.push(vec![
                String::new(),
                format!("  replica {}", k + 1),
                String::new(),
                sh.ok.to_string(),
                format!("{:.0}", sh.rps),
                match health_rps {
                    Some(h) if h > 0.0 => format!("{:.3}", sh.rps / h),
                    _ => "n/a".into(),
                },
                format!("{:.2}", sh.p50_ms),
                format!("{:.2}", sh.p99_ms),
                String::new(),
                String::new(),
                sh.errors.to_string(),
                r.server_rss_mib
                    .get(k)
                    .map(|m| format!("{m:.0}"))
                    .unwrap_or_default(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let pad = widths[c] - s.chars().count();
                if c < 2 || c == head.len() - 2 {
                    format!("{s}{}", " ".repeat(pad))
                } else {
                    format!("{}{s}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    for r in rows.iter().filter(|r| !r.note.is_empty()) {
        out.push_str(&format!("{} {}: {}\n", r.scenario, r.phase, r.note));
    }
    out
}
