//! Issue 8 item 7: the invariant checker (`Store::check_invariants`, `pns-gateway check`).
//! A realistic workload leaves nothing to report; then each anomaly is planted with raw SQL,
//! found by both the Store method and the binary (exit 1), and taken out again.

use std::{collections::BTreeSet, process::Command, sync::Arc};

use pns_gateway::{domain::anomaly::kind, grpc::pb, storage::Store};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

mod pns_load;
mod races;

use crate::support::{TestDb, TestServer, fixtures::*, server::fast_sweeper};

/// Real numbers of the workload: none may appear unmasked in any anomaly.
const A: [&str; 3] = ["85291110001", "85291110002", "85291110003"];
const B: [&str; 6] = [
    "85260000001",
    "85260000002",
    "85260000003",
    "85260000004",
    "85260000005",
    "85260000006",
];
const AXN_A: [&str; 4] = ["13900000001", "13900000002", "13900000003", "13900000004"];
const FREE: &str = "85213149999";

/// Runs `pns-gateway check` on `db`: (exit code, stdout + stderr).
pub fn check_cli(db: &TestDb) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pns-gateway"))
        .args(["check", "--database-url", &db.url])
        .env("PNS_LOG", "warn")
        .output()
        .expect("run pns-gateway check");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What the workload left behind, by role.
struct Live {
    /// AXYB (converted by A[0]; Y given at bind).
    axyb: pb::Binding,
    /// XYB with X locked and Y allocated.
    xyb: pb::Binding,
    /// XYB with delayed Y: X locked, no Y, no route.
    xyb_delayed: pb::Binding,
    /// AXN with an auto-assigned extension.
    axn: pb::Binding,
    /// Unbound XYB that had a Y.
    unbound: pb::Binding,
}

/// XYB binds (given X, delayed Y), call-ins that convert (one allocating its delayed Y), AXN
/// binds (auto and given extension), extension call-ins, unbinds and an expiry sweep.
async fn workload(s: &TestServer) -> Live {
    let numbers = pool_with(s, "p", "8521314", 14, "").await;
    let (mut c, mut calls) = (s.bindings(), s.calls());
    let bind = |b: &str, cbid: &str, f: &dyn Fn(&mut pb::BindXybRequest)| {
        let mut r = xyb("p", b);
        r.customer_bind_id = cbid.into();
        f(&mut r);
        let mut c = c.clone();
        async move {
            c.bind_xyb(r)
                .await
                .expect("bind xyb")
                .into_inner()
                .binding
                .unwrap()
        }
    };
    let axyb = bind(B[0], "cb-axyb", &|_| {}).await;
    let axyb2 = bind(B[1], "cb-axyb-delayed", &|r| r.delayed_y = true).await;
    let fixed_x = numbers[9].clone();
    let xyb_ = bind(B[2], "cb-xyb", &|r| r.number_x = fixed_x.clone()).await;
    let xyb_delayed = bind(B[3], "cb-xyb-delayed", &|r| r.delayed_y = true).await;
    let short = bind(B[4], "cb-short", &|r| r.bind_expire_seconds = 60).await;
    let unbound = bind(B[5], "cb-unbound", &|_| {}).await;

    for (a, b, id) in [(A[0], &axyb, "call-1"), (A[1], &axyb2, "call-2")] {
        let d = calls
            .notify_call_in(call_in(a, &b.number_x, "", id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.decision, pb::Decision::Connect as i32);
    }
    // The converted binding answers its B's call on Y; a retried call id is answered once.
    calls
        .notify_call_in(call_in(B[0], &axyb.number_y, "", "call-3"))
        .await
        .unwrap();
    calls
        .notify_call_in(call_in(A[0], &axyb.number_x, "", "call-1"))
        .await
        .unwrap();

    let axn_bind = |a: &str, cbid: &str, secs: i64, x_ext: Option<(&str, &str)>| {
        let mut r = axn("p", a, secs);
        r.customer_bind_id = cbid.into();
        if let Some((x, e)) = x_ext {
            r.number_x = x.into();
            r.extension = e.into();
        }
        let mut c = c.clone();
        async move {
            c.bind_axn_extension(r)
                .await
                .expect("bind axn")
                .into_inner()
                .binding
                .unwrap()
        }
    };
    let axn_ = axn_bind(AXN_A[0], "cb-axn", 3600, None).await;
    axn_bind(AXN_A[1], "cb-axn-fixed", 3600, Some((&axn_.number_x, "7"))).await;
    axn_bind(AXN_A[2], "cb-axn-short", 120, None).await;
    let axn_gone = axn_bind(AXN_A[3], "cb-axn-unbound", 3600, None).await;
    let d = calls
        .notify_call_in(call_in(A[2], &axn_.number_x, &axn_.extension, "call-4"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.decision, pb::Decision::Connect as i32);

    for id in [&unbound.binding_id, &axn_gone.binding_id] {
        c.unbind(pb::UnbindRequest {
            binding_id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("unbind");
    }
    // Expiry: the sweeper ends the 60 s XYB and the 120 s AXN.
    s.clock.advance(121_000);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    // Stats count by expiry; the scope counts rows the sweeper has actually ended.
    while s.store.check_scope().await.unwrap().active_bindings != 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sweeper did not run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        get_binding(s, &short.binding_id).await.state,
        pb::BindingState::Expired as i32
    );
    add_numbers(s, "p", &[FREE.to_owned()], "").await;
    Live {
        axyb,
        xyb: xyb_,
        xyb_delayed,
        axn: axn_,
        unbound,
    }
}

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let r = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row");
    r.try_get_by_index::<i64>(0).expect("an integer")
}

/// `DROP INDEX`: MySQL names the table too.
fn drop_index(db: &DatabaseConnection, index: &str, table: &str) -> String {
    match db.get_database_backend() {
        DbBackend::MySql => format!("DROP INDEX {index} ON {table}"),
        _ => format!("DROP INDEX {index}"),
    }
}

/// Inserts `n` routes `('n1', 'c:1', 'ghost')`, … (MariaDB stops a recursive CTE at 1000 rows
/// by default: there, a VALUES list).
fn ghost_routes(db: &DatabaseConnection, n: usize) -> String {
    let head = "INSERT INTO routes (number, route_key, binding_id)";
    match db.get_database_backend() {
        DbBackend::MySql => {
            let rows: Vec<String> = (1..=n)
                .map(|i| format!("('n{i}', 'c:1', 'ghost')"))
                .collect();
            format!("{head} VALUES {}", rows.join(", "))
        }
        _ => format!(
            "{head} WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
             SELECT 'n' || i, 'c:1', 'ghost' FROM s"
        ),
    }
}

#[track_caller]
fn assert_masked(text: &str) {
    for n in A.iter().chain(&B).chain(&AXN_A) {
        assert!(!text.contains(n), "{n} appears unmasked in: {text}");
    }
}

async fn kinds(store: &Store) -> (BTreeSet<&'static str>, String) {
    let found = store.check_invariants().await.expect("check runs");
    let text = found
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    (found.iter().map(|a| a.kind).collect(), text)
}

/// One planted anomaly: the SQL that plants it, the kinds the check must report (exactly),
/// a phrase the details must contain, and the SQL that takes it out again.
struct Case {
    what: &'static str,
    plant: Vec<String>,
    want: Vec<&'static str>,
    word: String,
    undo: Vec<String>,
}

fn case(
    what: &'static str,
    plant: Vec<String>,
    want: Vec<&'static str>,
    word: String,
    undo: Vec<String>,
) -> Case {
    Case {
        what,
        plant,
        want,
        word,
        undo,
    }
}

#[tokio::test]
async fn check_finds_nothing_after_a_workload_and_each_planted_anomaly_after_that() {
    let s = TestServer::start_with(fast_sweeper()).await;
    let live = workload(&s).await;
    let (db, store) = (Arc::clone(&s.db), s.store.clone());
    s.stop().await.expect("server stops");

    let (found, text) = kinds(&store).await;
    assert!(found.is_empty(), "a clean database reports:\n{text}");
    let (code, out) = check_cli(&db);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("ok: no anomalies in ") && out.contains("(6 active)"),
        "{out}"
    );

    let conn = Database::connect(&db.url).await.expect("connect");
    let (x1, y1, a1) = (&live.axyb.number_x, &live.axyb.number_y, A[0]);
    let (b1, x3, axn) = (&live.axyb.binding_id, &live.xyb.number_x, &live.axn);
    let (unbound, unbound_y) = (&live.unbound.binding_id, &live.unbound.number_y);
    let last = scalar(&conn, "SELECT last FROM event_seq").await;
    let untagged = scalar(
        &conn,
        "SELECT MIN(seq) FROM events WHERE dedupe_key IS NULL",
    )
    .await;
    let tagged = scalar(
        &conn,
        "SELECT MIN(seq) FROM events WHERE dedupe_key IS NOT NULL",
    )
    .await;
    let pool_id = scalar(
        &conn,
        &format!("SELECT pool_id FROM numbers WHERE number = '{x1}'"),
    )
    .await;

    let cases = vec![
        case(
            "a second copy of a route (unique index dropped)",
            vec![
                drop_index(&conn, "ux_routes_key", "routes"),
                format!("INSERT INTO routes (number, route_key, binding_id) SELECT number, route_key, binding_id FROM routes WHERE binding_id = '{b1}' AND number = '{x1}'"),
            ],
            vec![kind::DUPLICATE_ROUTE],
            format!("route ({x1}, caller 8529****001) exists 2 times"),
            vec![
                "DELETE FROM routes WHERE id = (SELECT MAX(id) FROM routes)".into(),
                "CREATE UNIQUE INDEX ux_routes_key ON routes (number, route_key)".into(),
            ],
        ),
        case(
            "a route to a binding that does not exist",
            vec![format!("INSERT INTO routes (number, route_key, binding_id) VALUES ('{FREE}', 'c:{a1}', 'ghost')")],
            vec![kind::ORPHAN_ROUTE],
            "names binding ghost which does not exist".into(),
            vec!["DELETE FROM routes WHERE binding_id = 'ghost'".into()],
        ),
        case(
            "an unbound binding still holding a route",
            vec![format!("INSERT INTO routes (number, route_key, binding_id) VALUES ('{FREE}', 'c:{}', '{unbound}')", B[5])],
            vec![kind::ENDED_BINDING_ROUTE],
            format!("held by binding {unbound}, which is not active (state unbound)"),
            vec![format!("DELETE FROM routes WHERE binding_id = '{unbound}'")],
        ),
        case(
            "an active AXN binding holding an extension it was not given",
            vec![format!("INSERT INTO routes (number, route_key, binding_id) VALUES ('{}', 'e:55', '{}')", axn.number_x, axn.binding_id)],
            vec![kind::UNEXPECTED_ROUTE],
            "extension 55) is held by active binding".into(),
            vec!["DELETE FROM routes WHERE route_key = 'e:55'".into()],
        ),
        case(
            "an AXYB binding without its (X, caller A) route",
            vec![format!("DELETE FROM routes WHERE binding_id = '{b1}' AND number = '{x1}'")],
            vec![kind::MISSING_ROUTE],
            format!("active binding {b1} (axyb) lacks its route ({x1}, caller 8529****001)"),
            vec![format!("INSERT INTO routes (number, route_key, binding_id) VALUES ('{x1}', 'c:{a1}', '{b1}')")],
        ),
        case(
            "an XYB binding without its B",
            vec![format!("UPDATE bindings SET phone_b = NULL WHERE id = '{}'", live.xyb_delayed.binding_id)],
            vec![kind::INCOMPLETE_BINDING],
            "(xyb) has no phone_b".into(),
            vec![format!("UPDATE bindings SET phone_b = '{}' WHERE id = '{}'", B[3], live.xyb_delayed.binding_id)],
        ),
        case(
            "an XYB binding marked inactive while still in state xyb",
            vec![format!("UPDATE bindings SET active = 0 WHERE id = '{}'", live.xyb_delayed.binding_id)],
            vec![kind::STATE_MISMATCH, kind::ENDED_BINDING_LOCK],
            "has mode xyb, state xyb and active = 0".into(),
            vec![format!("UPDATE bindings SET active = 1 WHERE id = '{}'", live.xyb_delayed.binding_id)],
        ),
        case(
            "a lock by a binding that does not exist",
            vec![format!("UPDATE numbers SET locked_by = 'ghost' WHERE number = '{FREE}'")],
            vec![kind::ORPHAN_LOCK],
            format!("number {FREE} is locked by binding ghost, which does not exist"),
            vec![format!("UPDATE numbers SET locked_by = NULL WHERE number = '{FREE}'")],
        ),
        case(
            "a lock by an unbound binding",
            vec![format!("UPDATE numbers SET locked_by = '{unbound}' WHERE number = '{FREE}'")],
            vec![kind::ENDED_BINDING_LOCK],
            "which is not active (state unbound)".into(),
            vec![format!("UPDATE numbers SET locked_by = NULL WHERE number = '{FREE}'")],
        ),
        case(
            "a lock by an AXN binding",
            vec![format!("UPDATE numbers SET locked_by = '{}' WHERE number = '{FREE}'", axn.binding_id)],
            vec![kind::UNEXPECTED_LOCK],
            "(state axn, provider local".into(),
            vec![format!("UPDATE numbers SET locked_by = NULL WHERE number = '{FREE}'")],
        ),
        case(
            "an XYB binding whose X lost its lock",
            vec![format!("UPDATE numbers SET locked_by = NULL WHERE number = '{x3}'")],
            vec![kind::MISSING_LOCK],
            format!("does not hold the lock on its X {x3}"),
            vec![format!("UPDATE numbers SET locked_by = '{}' WHERE number = '{x3}'", live.xyb.binding_id)],
        ),
        case(
            "an XYB binding locking a number that serves another binding as Y",
            vec![
                format!("UPDATE numbers SET locked_by = NULL WHERE number = '{x3}'"),
                format!("UPDATE numbers SET locked_by = '{}' WHERE number = '{y1}'", live.xyb.binding_id),
                format!("UPDATE bindings SET number_x = '{y1}' WHERE id = '{}'", live.xyb.binding_id),
            ],
            vec![kind::LOCKED_NUMBER_SHARED],
            format!("but active binding {b1} uses it as its Y"),
            vec![
                format!("UPDATE bindings SET number_x = '{x3}' WHERE id = '{}'", live.xyb.binding_id),
                format!("UPDATE numbers SET locked_by = NULL WHERE number = '{y1}'"),
                format!("UPDATE numbers SET locked_by = '{}' WHERE number = '{x3}'", live.xyb.binding_id),
            ],
        ),
        case(
            "a share count one too high",
            vec![format!("UPDATE numbers SET shared_count = shared_count + 1 WHERE number = '{y1}'")],
            vec![kind::SHARED_COUNT_MISMATCH],
            format!("number {y1} has shared_count"),
            vec![format!("UPDATE numbers SET shared_count = shared_count - 1 WHERE number = '{y1}'")],
        ),
        case(
            "an unbound binding's share not given back",
            vec![format!("UPDATE numbers SET shared_count = shared_count + 1 WHERE number = '{unbound_y}'")],
            vec![kind::SHARED_COUNT_MISMATCH],
            format!("number {unbound_y} has shared_count"),
            vec![format!("UPDATE numbers SET shared_count = shared_count - 1 WHERE number = '{unbound_y}'")],
        ),
        case(
            "an extension count one too low",
            vec![format!("UPDATE numbers SET ext_count = ext_count - 1 WHERE number = '{}'", axn.number_x)],
            vec![kind::EXT_COUNT_MISMATCH],
            "but 2 active AXN bindings are on it".into(),
            vec![format!("UPDATE numbers SET ext_count = ext_count + 1 WHERE number = '{}'", axn.number_x)],
        ),
        case(
            "a binding's X moved out of its pool",
            vec![format!("UPDATE numbers SET pool_id = {} WHERE number = '{x1}'", pool_id + 1000)],
            vec![kind::UNKNOWN_NUMBER],
            format!("has X = {x1}, which is not a number of its pool"),
            vec![format!("UPDATE numbers SET pool_id = {pool_id} WHERE number = '{x1}'")],
        ),
        case(
            "two bindings with one customer_bind_id (unique index dropped)",
            vec![
                drop_index(&conn, "ux_bindings_customer_bind_id", "bindings"),
                format!("UPDATE bindings SET customer_bind_id = 'cb-axyb' WHERE id = '{unbound}'"),
            ],
            vec![kind::DUPLICATE_CUSTOMER_BIND_ID],
            "has 2 bindings (1 active) with customer_bind_id \"cb-axyb\"".into(),
            vec![
                format!("UPDATE bindings SET customer_bind_id = 'cb-unbound' WHERE id = '{unbound}'"),
                "CREATE UNIQUE INDEX ux_bindings_customer_bind_id ON bindings (tenant, customer_bind_id)".into(),
            ],
        ),
        case(
            "a counter ahead of the log",
            vec!["UPDATE event_seq SET last = last + 2".into()],
            vec![kind::EVENT_GAP],
            format!("events {}..={} (2 sequences) are missing", last + 1, last + 2),
            vec!["UPDATE event_seq SET last = last - 2".into()],
        ),
        case(
            "a hole in the middle of the log",
            vec!["UPDATE events SET seq = seq + 1000000 WHERE seq = 2".into()],
            vec![kind::EVENT_GAP, kind::EVENT_OUT_OF_RANGE],
            "event 2 is missing".into(),
            vec!["UPDATE events SET seq = seq - 1000000 WHERE seq = 1000002".into()],
        ),
        case(
            "the first event missing",
            vec!["UPDATE events SET seq = seq + 1000000 WHERE seq = 1".into()],
            vec![kind::EVENT_GAP, kind::EVENT_OUT_OF_RANGE],
            "event 1 is missing".into(),
            vec!["UPDATE events SET seq = seq - 1000000 WHERE seq = 1000001".into()],
        ),
        case(
            "two events with one sequence (primary key dropped)",
            vec![
                "ALTER TABLE events RENAME TO events_orig".into(),
                "CREATE TABLE events AS SELECT * FROM events_orig".into(),
                format!("INSERT INTO events SELECT * FROM events_orig WHERE seq = {untagged}"),
            ],
            vec![kind::DUPLICATE_EVENT_SEQ],
            format!("sequence {untagged} is used by 2 events"),
            vec![
                "DROP TABLE events".into(),
                "ALTER TABLE events_orig RENAME TO events".into(),
            ],
        ),
        case(
            "two events with one dedupe key (unique index dropped)",
            vec![
                drop_index(&conn, "ux_events_dedupe_key", "events"),
                format!("UPDATE events SET dedupe_key = (SELECT dedupe_key FROM events WHERE seq = {tagged}) WHERE seq = {untagged}"),
            ],
            vec![kind::DUPLICATE_DEDUPE_KEY],
            "2 events share dedupe_key \"grpc|call-".into(),
            vec![
                format!("UPDATE events SET dedupe_key = NULL WHERE seq = {untagged}"),
                "CREATE UNIQUE INDEX ux_events_dedupe_key ON events (dedupe_key)".into(),
            ],
        ),
        case(
            "the event counter row gone",
            vec!["DELETE FROM event_seq".into()],
            vec![kind::EVENT_COUNTER],
            "the event_seq row is missing".into(),
            vec![format!("INSERT INTO event_seq (id, last) VALUES (1, {last})")],
        ),
        case(
            "a second event counter row",
            vec!["INSERT INTO event_seq (id, last) VALUES (2, 0)".into()],
            vec![kind::EVENT_COUNTER],
            "found ids 1, 2".into(),
            vec!["DELETE FROM event_seq WHERE id = 2".into()],
        ),
        case(
            "more orphan routes than are listed",
            vec![ghost_routes(&conn, 1001)],
            vec![kind::ORPHAN_ROUTE, kind::TRUNCATED],
            "more than 1000 routes of missing or ended bindings".into(),
            vec!["DELETE FROM routes WHERE binding_id = 'ghost'".into()],
        ),
    ];

    for Case {
        what,
        plant,
        want,
        word,
        undo,
    } in &cases
    {
        for sql in plant {
            exec(&conn, sql).await;
        }
        let (found, text) = kinds(&store).await;
        let want: BTreeSet<&str> = want.iter().copied().collect();
        assert_eq!(found, want, "{what}: reported\n{text}");
        assert!(
            text.contains(word.as_str()),
            "{what}: {word:?} not in\n{text}"
        );
        if found.contains(kind::TRUNCATED) {
            // The cap: 1000 listed, then one `truncated` line.
            assert_eq!(
                text.matches(&format!("{}: ", kind::ORPHAN_ROUTE)).count(),
                1000
            );
        }
        assert_masked(&text);
        let (code, out) = check_cli(&db);
        assert_eq!(code, 1, "{what}: {out}");
        for k in &want {
            assert!(
                out.contains(&format!("\n{k}: ")) || out.starts_with(&format!("{k}: ")),
                "{what}: {k} not printed:\n{out}"
            );
        }
        assert!(out.contains("FAILED: "), "{out}");
        assert_masked(&out);
        for sql in undo {
            exec(&conn, sql).await;
        }
        let (found, text) = kinds(&store).await;
        assert!(found.is_empty(), "after undoing {what}:\n{text}");
    }
    assert_eq!(check_cli(&db).0, 0);
    conn.close().await.ok();
}

#[tokio::test]
async fn check_refuses_a_database_that_is_not_there_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_pns-gateway"))
        .args(["check", "--database-url", path.to_str().unwrap()])
        .env("PNS_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("no SQLite database file at"), "{text}");
    assert!(
        !path.exists(),
        "check created the file it was asked to check"
    );

    // A file that is not a migrated pns-gateway database: the check cannot run (2), it does
    // not report "no anomalies".
    std::fs::write(&path, b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pns-gateway"))
        .args(["check", "--database-url", path.to_str().unwrap()])
        .env("PNS_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("check could not run"), "{text}");
}
