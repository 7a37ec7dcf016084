//! The invariant checker behind `pns-gateway check` and `pns-load --check`: read-only queries
//! that look for every state DESIGN.md §3 rules out, on SQLite, PostgreSQL and MySQL alike.
//!
//! The unique indexes and conditional UPDATEs are what keep the invariants; these queries are
//! the independent audit (after a crash, a restore, a manual edit, a bug). They never trust the
//! claim columns: routes, locks and the share counters are recomputed from the active bindings.
//! All of them run in one read transaction (REPEATABLE READ on PostgreSQL and MySQL, a WAL read
//! snapshot on SQLite), so a check of a live database sees one consistent state, not a
//! half-written bind.
//!
//! What an active local binding needs (see `storage::bindings` and `storage::calls`):
//! - state `xyb`: X locked by it (`numbers.locked_by`); route (Y, caller B) once Y is allocated;
//! - state `axyb`: routes (X, caller A) and (Y, caller B); no lock;
//! - state `axn`: routes (X, caller A) and (X, extension);
//! - Y of an XYB/AXYB binding and X of an AXN binding count in `numbers.shared_count`; AXN X also
//!   in `numbers.ext_count`.
//!
//! Carrier mirrors (provider not `local`) hold none of these: the carrier allocates and routes.

use std::path::Path;

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, IsolationLevel,
    QueryResult, Statement, TransactionTrait,
};

use super::{Store, normalize_url};
use crate::domain::{
    DomainError,
    anomaly::{Anomaly, CheckScope, kind, redact, route_key_label},
    text::echo,
};

// Details: ids, states and virtual numbers (X, Y) as stored, through `echo` (bounded,
// printable); free text a client chose (tenant, customer_bind_id, dedupe keys) through
// `redact`, which also masks any phone number inside; real numbers A and B (route keys) masked.

/// Rows listed per query; beyond it one `truncated` line says there are more.
const LIST_LIMIT: usize = 1000;

type Db<T> = Result<T, DbErr>;

impl Store {
    /// Connects to an existing database for a check: a SQLite file that does not exist is an
    /// error here (a mistyped path must not be created and then reported clean). Does not
    /// migrate.
    pub async fn connect_existing(url: &str) -> Result<Self, DbErr> {
        if let Some(path) = sqlite_file(&normalize_url(url))
            && !Path::new(&path).exists()
        {
            return Err(DbErr::Custom(format!("no SQLite database file at {path}")));
        }
        Self::connect(url).await
    }

    /// Runs every invariant query in one read snapshot; an empty list means the database is
    /// consistent.
    pub async fn check_invariants(&self) -> Result<Vec<Anomaly>, DomainError> {
        let tx = self.snapshot().await?;
        let mut c = Checker {
            tx: &tx,
            out: Vec::new(),
        };
        let res = c.run_all().await;
        let found = c.out;
        // Read-only: nothing to keep.
        tx.rollback().await?;
        res?;
        Ok(found)
    }

    /// How many rows a check covers (printed with a clean result).
    pub async fn check_scope(&self) -> Result<CheckScope, DomainError> {
        let sql = "SELECT (SELECT COUNT(*) FROM bindings) AS bindings, \
                   (SELECT COUNT(*) FROM bindings WHERE active = 1) AS active, \
                   (SELECT COUNT(*) FROM routes) AS routes, \
                   (SELECT COUNT(*) FROM numbers) AS numbers, \
                   (SELECT COUNT(*) FROM events) AS events";
        let r = self
            .db
            .query_one_raw(Statement::from_string(self.backend, sql))
            .await?
            .ok_or_else(|| DomainError::Internal("count query returned no row".into()))?;
        Ok(CheckScope {
            bindings: get(&r, "bindings")?,
            active_bindings: get(&r, "active")?,
            routes: get(&r, "routes")?,
            numbers: get(&r, "numbers")?,
            events: get(&r, "events")?,
        })
    }

    async fn snapshot(&self) -> Db<DatabaseTransaction> {
        if self.backend != DbBackend::Sqlite {
            // PostgreSQL and MySQL: one snapshot for every statement (MySQL's READ COMMITTED
            // session default would take one per statement).
            self.db
                .begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
                .await
        } else {
            // A deferred transaction: its first read fixes the WAL snapshot for all the others.
            self.db.begin().await
        }
    }
}

/// The file of a SQLite URL, if it names one (not `:memory:`).
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.to_owned())
}

fn get<T: sea_orm::TryGetable>(r: &QueryResult, col: &str) -> Db<T> {
    r.try_get("", col)
}

struct Checker<'a> {
    tx: &'a DatabaseTransaction,
    out: Vec<Anomaly>,
}

impl Checker<'_> {
    async fn run_all(&mut self) -> Db<()> {
        self.routes().await?;
        self.bindings().await?;
        self.locks().await?;
        self.counts().await?;
        self.events().await?;
        Ok(())
    }

    /// Up to `LIST_LIMIT` rows of `sql` (which must not end in LIMIT); a `truncated` anomaly
    /// when there are more.
    async fn rows(&mut self, what: &str, sql: &str) -> Db<Vec<QueryResult>> {
        let backend = self.tx.get_database_backend();
        let stmt = Statement::from_string(backend, format!("{sql} LIMIT {}", LIST_LIMIT + 1));
        let mut rows = self.tx.query_all_raw(stmt).await?;
        if rows.len() > LIST_LIMIT {
            rows.truncate(LIST_LIMIT);
            self.push(
                kind::TRUNCATED,
                format!("more than {LIST_LIMIT} {what}; only the first {LIST_LIMIT} are listed"),
            );
        }
        Ok(rows)
    }

    /// The 64-bit integer type of a CAST (a SUM is a DECIMAL on MySQL: use COUNT instead).
    fn int64(&self) -> &'static str {
        match self.tx.get_database_backend() {
            DbBackend::MySql => "SIGNED",
            _ => "BIGINT",
        }
    }

    fn push(&mut self, kind: &'static str, detail: String) {
        self.out.push(Anomaly::new(kind, detail));
    }

    async fn routes(&mut self) -> Db<()> {
        let sql = "SELECT number, route_key, COUNT(*) AS n FROM routes \
                   GROUP BY number, route_key HAVING COUNT(*) > 1 ORDER BY number, route_key";
        for r in self.rows("duplicate routes", sql).await? {
            let (n, key, count) = (
                get::<String>(&r, "number")?,
                get::<String>(&r, "route_key")?,
                get::<i64>(&r, "n")?,
            );
            self.push(
                kind::DUPLICATE_ROUTE,
                format!(
                    "route ({n}, {}) exists {count} times",
                    route_key_label(&key)
                ),
            );
        }

        let sql = "SELECT r.number, r.route_key, r.binding_id, b.state FROM routes r \
                   LEFT JOIN bindings b ON b.id = r.binding_id \
                   WHERE b.id IS NULL OR b.active <> 1 ORDER BY r.id";
        for r in self
            .rows("routes of missing or ended bindings", sql)
            .await?
        {
            let route = route_label(&r)?;
            let id = get::<String>(&r, "binding_id")?;
            match get::<Option<String>>(&r, "state")? {
                None => self.push(
                    kind::ORPHAN_ROUTE,
                    format!("{route} names binding {} which does not exist", echo(&id)),
                ),
                Some(state) => self.push(
                    kind::ENDED_BINDING_ROUTE,
                    format!(
                        "{route} is held by binding {id}, which is not active (state {})",
                        echo(&state)
                    ),
                ),
            }
        }

        // Every route of an active binding must be one that its mode and state call for.
        // CASE, not NOT(...): a NULL field must count as "not expected", not drop the row.
        let sql = "SELECT r.number, r.route_key, r.binding_id, b.state, b.provider FROM routes r \
                   JOIN bindings b ON b.id = r.binding_id \
                   WHERE b.active = 1 AND (CASE WHEN b.provider = 'local' AND ( \
                     (b.state IN ('xyb', 'axyb') AND r.number = b.number_y \
                        AND r.route_key = 'c:' || b.phone_b) \
                     OR (b.state = 'axyb' AND r.number = b.number_x \
                        AND r.route_key = 'c:' || b.phone_a) \
                     OR (b.state = 'axn' AND r.number = b.number_x \
                        AND (r.route_key = 'c:' || b.phone_a OR r.route_key = 'e:' || b.extension)) \
                   ) THEN 1 ELSE 0 END) = 0 ORDER BY r.id";
        for r in self.rows("unexpected routes", sql).await? {
            let route = route_label(&r)?;
            let (id, state, provider) = (
                get::<String>(&r, "binding_id")?,
                get::<String>(&r, "state")?,
                get::<String>(&r, "provider")?,
            );
            self.push(
                kind::UNEXPECTED_ROUTE,
                format!(
                    "{route} is held by active binding {id} ({}, provider {}), which does not need it",
                    echo(&state),
                    echo(&provider)
                ),
            );
        }

        // The routes each active local binding needs, held by that binding.
        let need = |number: &str, key: &str, states: &str, not_null: &str| {
            format!(
                "SELECT b.id, b.state, b.{number} AS number, {key} AS route_key FROM bindings b \
                 WHERE b.active = 1 AND b.provider = 'local' AND b.state IN ({states}) \
                 AND b.{number} IS NOT NULL AND b.{not_null} IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM routes r WHERE r.number = b.{number} \
                   AND r.route_key = {key} AND r.binding_id = b.id)"
            )
        };
        let sql = format!(
            "{} UNION ALL {} UNION ALL {} ORDER BY 1, 4",
            need("number_y", "'c:' || b.phone_b", "'xyb', 'axyb'", "phone_b"),
            need("number_x", "'c:' || b.phone_a", "'axyb', 'axn'", "phone_a"),
            need("number_x", "'e:' || b.extension", "'axn'", "extension"),
        );
        for r in self.rows("missing routes", &sql).await? {
            let route = route_label(&r)?;
            let (id, state) = (get::<String>(&r, "id")?, get::<String>(&r, "state")?);
            self.push(
                kind::MISSING_ROUTE,
                format!("active binding {id} ({state}) lacks its {route}"),
            );
        }
        Ok(())
    }

    async fn bindings(&mut self) -> Db<()> {
        let sql = format!(
            "SELECT id, mode, state, CAST(active AS {}) AS active FROM bindings \
                   WHERE (active = 1 AND NOT ((mode = 'xyb' AND state IN ('xyb', 'axyb')) \
                     OR (mode = 'axn_extension' AND state = 'axn'))) \
                   OR (active <> 1 AND state IN ('xyb', 'axyb', 'axn')) \
                   OR active NOT IN (0, 1) ORDER BY id",
            self.int64()
        );
        for r in self.rows("state mismatches", &sql).await? {
            let (id, mode, state, active) = (
                get::<String>(&r, "id")?,
                get::<String>(&r, "mode")?,
                get::<String>(&r, "state")?,
                get::<i64>(&r, "active")?,
            );
            self.push(
                kind::STATE_MISMATCH,
                format!(
                    "binding {} has mode {}, state {} and active = {active}",
                    echo(&id),
                    echo(&mode),
                    echo(&state)
                ),
            );
        }

        let sql = "SELECT id, state, phone_a, phone_b, number_y, extension FROM bindings \
                   WHERE active = 1 AND provider = 'local' AND ( \
                     (state IN ('xyb', 'axyb') AND phone_b IS NULL) \
                     OR (state = 'axyb' AND (phone_a IS NULL OR number_y IS NULL)) \
                     OR (state = 'axn' AND (phone_a IS NULL OR extension IS NULL))) ORDER BY id";
        for r in self.rows("incomplete bindings", sql).await? {
            let (id, state) = (get::<String>(&r, "id")?, get::<String>(&r, "state")?);
            let needs: &[&str] = match state.as_str() {
                "xyb" => &["phone_b"],
                "axyb" => &["phone_a", "phone_b", "number_y"],
                _ => &["phone_a", "extension"],
            };
            let mut missing = Vec::new();
            for col in needs {
                if get::<Option<String>>(&r, col)?.is_none() {
                    missing.push(*col);
                }
            }
            self.push(
                kind::INCOMPLETE_BINDING,
                format!(
                    "active binding {id} ({state}) has no {}",
                    missing.join(", ")
                ),
            );
        }

        let sql = "SELECT tenant, customer_bind_id, COUNT(*) AS n, \
                   COUNT(CASE WHEN active = 1 THEN 1 END) AS live FROM bindings \
                   WHERE customer_bind_id IS NOT NULL GROUP BY tenant, customer_bind_id \
                   HAVING COUNT(*) > 1 ORDER BY tenant, customer_bind_id";
        for r in self.rows("duplicate customer_bind_ids", sql).await? {
            let (tenant, cbid, n, live) = (
                get::<String>(&r, "tenant")?,
                get::<String>(&r, "customer_bind_id")?,
                get::<i64>(&r, "n")?,
                get::<i64>(&r, "live")?,
            );
            self.push(
                kind::DUPLICATE_CUSTOMER_BIND_ID,
                format!(
                    "tenant {:?} has {n} bindings ({live} active) with customer_bind_id {:?}",
                    redact(&tenant),
                    redact(&cbid)
                ),
            );
        }

        let sql = "SELECT b.id, 'X' AS role, b.number_x AS number FROM bindings b \
                   WHERE b.active = 1 AND b.provider = 'local' AND NOT EXISTS ( \
                     SELECT 1 FROM numbers n WHERE n.number = b.number_x AND n.pool_id = b.pool_id) \
                   UNION ALL \
                   SELECT b.id, 'Y' AS role, b.number_y AS number FROM bindings b \
                   WHERE b.active = 1 AND b.provider = 'local' AND b.number_y IS NOT NULL \
                   AND NOT EXISTS ( \
                     SELECT 1 FROM numbers n WHERE n.number = b.number_y AND n.pool_id = b.pool_id) \
                   ORDER BY 1, 2";
        for r in self.rows("bindings on unknown numbers", sql).await? {
            let (id, role, n) = (
                get::<String>(&r, "id")?,
                get::<String>(&r, "role")?,
                get::<String>(&r, "number")?,
            );
            self.push(
                kind::UNKNOWN_NUMBER,
                format!(
                    "active binding {id} has {role} = {}, which is not a number of its pool",
                    echo(&n)
                ),
            );
        }
        Ok(())
    }

    async fn locks(&mut self) -> Db<()> {
        let sql = format!(
            "SELECT n.number, n.locked_by, b.state, CAST(b.active AS {}) AS active, \
                   b.number_x, b.provider FROM numbers n LEFT JOIN bindings b ON b.id = n.locked_by \
                   WHERE n.locked_by IS NOT NULL AND (b.id IS NULL OR b.active <> 1 \
                     OR b.state <> 'xyb' OR b.provider <> 'local' OR b.number_x <> n.number) \
                   ORDER BY n.number",
            self.int64()
        );
        for r in self.rows("bad locks", &sql).await? {
            let (n, by) = (
                get::<String>(&r, "number")?,
                get::<String>(&r, "locked_by")?,
            );
            let by = echo(&by);
            match get::<Option<String>>(&r, "state")? {
                None => self.push(
                    kind::ORPHAN_LOCK,
                    format!("number {n} is locked by binding {by}, which does not exist"),
                ),
                Some(state) if get::<Option<i64>>(&r, "active")? != Some(1) => self.push(
                    kind::ENDED_BINDING_LOCK,
                    format!(
                        "number {n} is still locked by binding {by}, which is not active (state {})",
                        echo(&state)
                    ),
                ),
                Some(state) => {
                    let x = get::<String>(&r, "number_x")?;
                    let provider = get::<String>(&r, "provider")?;
                    self.push(
                        kind::UNEXPECTED_LOCK,
                        format!(
                            "number {n} is locked by binding {by} (state {}, provider {}, X {}), which is not an XYB binding on it",
                            echo(&state),
                            echo(&provider),
                            echo(&x)
                        ),
                    );
                }
            }
        }

        let sql = "SELECT b.id, b.number_x, n.locked_by FROM bindings b \
                   JOIN numbers n ON n.number = b.number_x \
                   WHERE b.active = 1 AND b.provider = 'local' AND b.state = 'xyb' \
                   AND (n.locked_by IS NULL OR n.locked_by <> b.id) ORDER BY b.id";
        for r in self.rows("missing locks", sql).await? {
            let (id, x) = (get::<String>(&r, "id")?, get::<String>(&r, "number_x")?);
            let detail = match get::<Option<String>>(&r, "locked_by")? {
                None => format!("XYB binding {id} does not hold the lock on its X {x}"),
                Some(other) => format!(
                    "XYB binding {id} does not hold the lock on its X {x}: binding {} does",
                    echo(&other)
                ),
            };
            self.push(kind::MISSING_LOCK, detail);
        }

        // Two equality joins, not one OR join: each can be a hash join on a million rows.
        let sql = "SELECT n.number, n.locked_by, b.id, 'Y' AS role FROM numbers n \
                   JOIN bindings b ON b.number_y = n.number \
                   WHERE n.locked_by IS NOT NULL AND b.active = 1 AND b.provider = 'local' \
                   AND b.id <> n.locked_by \
                   UNION ALL \
                   SELECT n.number, n.locked_by, b.id, 'X' AS role FROM numbers n \
                   JOIN bindings b ON b.number_x = n.number \
                   WHERE n.locked_by IS NOT NULL AND b.active = 1 AND b.provider = 'local' \
                   AND b.mode = 'axn_extension' AND b.id <> n.locked_by ORDER BY 1, 3";
        for r in self.rows("shared locked numbers", sql).await? {
            let (n, by, id, role) = (
                get::<String>(&r, "number")?,
                get::<String>(&r, "locked_by")?,
                get::<String>(&r, "id")?,
                get::<String>(&r, "role")?,
            );
            let used = if role == "Y" {
                "as its Y"
            } else {
                "as its AXN X"
            };
            self.push(
                kind::LOCKED_NUMBER_SHARED,
                format!(
                    "number {n} is locked by binding {} but active binding {id} uses it {used}",
                    echo(&by)
                ),
            );
        }
        Ok(())
    }

    /// `numbers.shared_count` / `ext_count` against a recount of the active local bindings.
    async fn counts(&mut self) -> Db<()> {
        let sql = "SELECT n.number, n.shared_count, n.ext_count, \
                   COALESCE(s.cnt, 0) AS want_shared, COALESCE(e.cnt, 0) AS want_ext \
                   FROM numbers n \
                   LEFT JOIN (SELECT u.num, COUNT(*) AS cnt FROM ( \
                       SELECT number_x AS num FROM bindings WHERE active = 1 \
                         AND provider = 'local' AND mode = 'axn_extension' \
                       UNION ALL \
                       SELECT number_y AS num FROM bindings WHERE active = 1 \
                         AND provider = 'local' AND mode = 'xyb' AND number_y IS NOT NULL \
                     ) u GROUP BY u.num) s ON s.num = n.number \
                   LEFT JOIN (SELECT number_x AS num, COUNT(*) AS cnt FROM bindings \
                     WHERE active = 1 AND provider = 'local' AND mode = 'axn_extension' \
                     GROUP BY number_x) e ON e.num = n.number \
                   WHERE n.shared_count <> COALESCE(s.cnt, 0) OR n.ext_count <> COALESCE(e.cnt, 0) \
                   ORDER BY n.number";
        for r in self.rows("numbers with wrong counters", sql).await? {
            let n = get::<String>(&r, "number")?;
            let (shared, want_shared) = (
                get::<i64>(&r, "shared_count")?,
                get::<i64>(&r, "want_shared")?,
            );
            let (ext, want_ext) = (get::<i64>(&r, "ext_count")?, get::<i64>(&r, "want_ext")?);
            if shared != want_shared {
                self.push(
                    kind::SHARED_COUNT_MISMATCH,
                    format!("number {n} has shared_count {shared}, but {want_shared} active bindings use it as Y or AXN X"),
                );
            }
            if ext != want_ext {
                self.push(
                    kind::EXT_COUNT_MISMATCH,
                    format!("number {n} has ext_count {ext}, but {want_ext} active AXN bindings are on it"),
                );
            }
        }
        Ok(())
    }

    /// The event log: sequences exactly 1..=event_seq.last, each once; dedupe keys once.
    async fn events(&mut self) -> Db<()> {
        let counters = self
            .rows(
                "event counters",
                "SELECT id, last FROM event_seq ORDER BY id",
            )
            .await?;
        let last = match counters.as_slice() {
            [one] if get::<i64>(one, "id")? == 1 => get::<i64>(one, "last")?,
            [] => {
                self.push(kind::EVENT_COUNTER, "the event_seq row is missing".into());
                return Ok(());
            }
            many => {
                let ids = many
                    .iter()
                    .map(|r| get::<i64>(r, "id").map(|i| i.to_string()))
                    .collect::<Db<Vec<_>>>()?;
                self.push(
                    kind::EVENT_COUNTER,
                    format!(
                        "event_seq should be one row with id 1; found ids {}",
                        ids.join(", ")
                    ),
                );
                return Ok(());
            }
        };

        let sql =
            "SELECT seq, COUNT(*) AS n FROM events GROUP BY seq HAVING COUNT(*) > 1 ORDER BY seq";
        for r in self.rows("duplicate event sequences", sql).await? {
            let (seq, n) = (get::<i64>(&r, "seq")?, get::<i64>(&r, "n")?);
            self.push(
                kind::DUPLICATE_EVENT_SEQ,
                format!("sequence {seq} is used by {n} events"),
            );
        }

        let sql = format!("SELECT seq FROM events WHERE seq < 1 OR seq > {last} ORDER BY seq");
        for r in self.rows("events out of range", &sql).await? {
            let seq = get::<i64>(&r, "seq")?;
            self.push(
                kind::EVENT_OUT_OF_RANGE,
                format!("event {seq} is outside 1..=event_seq.last ({last})"),
            );
        }

        // Holes: only looked for when the distinct sequences in range do not add up.
        let sql =
            format!("SELECT COUNT(DISTINCT seq) AS n FROM events WHERE seq BETWEEN 1 AND {last}");
        let stmt = Statement::from_string(self.tx.get_database_backend(), sql);
        let present = match self.tx.query_one_raw(stmt).await? {
            Some(r) => get::<i64>(&r, "n")?,
            None => 0,
        };
        if present != last {
            // Each row: the last present sequence before a hole and the next present one.
            // MySQL before 8.0 wants a FROM for a WHERE: its empty table is DUAL.
            let dual = match self.tx.get_database_backend() {
                DbBackend::MySql => " FROM DUAL",
                _ => "",
            };
            let sql = format!(
                "SELECT 0 AS before_gap, (SELECT MIN(seq) FROM events WHERE seq >= 1) AS after_gap{dual} \
                 WHERE NOT EXISTS (SELECT 1 FROM events WHERE seq = 1) \
                 UNION ALL \
                 SELECT e.seq AS before_gap, (SELECT MIN(f.seq) FROM events f WHERE f.seq > e.seq) \
                   AS after_gap FROM events e WHERE e.seq BETWEEN 1 AND {last} - 1 \
                 AND NOT EXISTS (SELECT 1 FROM events g WHERE g.seq = e.seq + 1) ORDER BY 1"
            );
            for r in self.rows("event gaps", &sql).await? {
                let from = get::<i64>(&r, "before_gap")? + 1;
                let to =
                    get::<Option<i64>>(&r, "after_gap")?.map_or(last, |next| (next - 1).min(last));
                if from > to {
                    continue;
                }
                let what = if from == to {
                    format!("event {from} is missing")
                } else {
                    format!(
                        "events {from}..={to} ({} sequences) are missing",
                        to - from + 1
                    )
                };
                self.push(
                    kind::EVENT_GAP,
                    format!("{what} (event_seq.last is {last})"),
                );
            }
        }

        let sql = "SELECT dedupe_key, COUNT(*) AS n FROM events WHERE dedupe_key IS NOT NULL \
                   GROUP BY dedupe_key HAVING COUNT(*) > 1 ORDER BY dedupe_key";
        for r in self.rows("duplicate dedupe keys", sql).await? {
            let (key, n) = (get::<String>(&r, "dedupe_key")?, get::<i64>(&r, "n")?);
            self.push(
                kind::DUPLICATE_DEDUPE_KEY,
                format!("{n} events share dedupe_key {:?}", redact(&key)),
            );
        }
        Ok(())
    }
}

/// "route (X, caller 8529****222)" from a row with `number` and `route_key`.
fn route_label(r: &QueryResult) -> Db<String> {
    let n = get::<String>(r, "number")?;
    let key = get::<String>(r, "route_key")?;
    Ok(format!("route ({}, {})", echo(&n), route_key_label(&key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_file_names_only_files() {
        assert_eq!(
            sqlite_file("sqlite:///tmp/a.db?mode=rwc").as_deref(),
            Some("/tmp/a.db")
        );
        assert_eq!(sqlite_file("sqlite:pns.db").as_deref(), Some("pns.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
