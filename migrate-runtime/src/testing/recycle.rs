//! Returning a passing test's database to the warm pool instead of dropping it: what the test
//! wrote, read from the server's statistics, is undone only when undoing it is exact (rows in
//! tables and sequences the template left empty and unused); anything else is dropped.
//!
//! Why: with a large schema a clone and a drop are hundreds of milliseconds of server work
//! each, and a suite's steady state would otherwise clone and drop once per test.

use postgres::Client;
use postgres_protocol::escape::escape_literal;

/// What the template holds that a recycled clone could not get back by emptying it: tables
/// with rows (or that once had them) and sequences that were used. A test that writes to one
/// of them makes its database unrecyclable. Stored as the template database's comment, so
/// that every process using the template knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Baseline {
    /// The relations' OIDs (the same in every clone: `CREATE DATABASE` copies the catalogs).
    fixed: Vec<u32>,
    /// Whether the template has any sequence. Using one is not counted with the written
    /// rows; without any, a database with no row written anywhere is known untouched
    /// without connecting to it.
    sequences: bool,
}

/// The comment's first words, telling our baseline from a comment someone else wrote.
const MARK: &str = "migrate-runtime test template;";

/// The comment a passing test's database carries while it waits to be recycled, so that one
/// left behind by a process that exited meanwhile is known to be finished with (and which
/// template's pool may take it).
const FINISHED: &str = "migrate-runtime: finished test database of ";

/// The comment marking a finished clone of `template`.
pub(crate) fn finished_comment(template: &str) -> String {
    format!("{FINISHED}{template}")
}

/// The `LIKE` pattern matching every finished database's comment.
pub(crate) fn finished_pattern() -> String {
    format!("{FINISHED}%")
}

/// The template a finished database's comment names.
pub(crate) fn finished_template(comment: &str) -> Option<&str> {
    comment.strip_prefix(FINISHED)
}

impl Baseline {
    /// Measures a just-migrated template (through a session in it).
    pub(crate) fn measure(template: &mut Client) -> Result<Baseline, postgres::Error> {
        let mut fixed: Vec<u32> = template
            .query(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'm') \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname !~ '^pg_(toast|temp)' \
                   AND pg_relation_size(c.oid) > 0",
                &[],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let sequences = template.query(
            "SELECT s.seqrelid, s.seqrelid::regclass::text, s.seqstart FROM pg_sequence s",
            &[],
        )?;
        let any_sequence = !sequences.is_empty();
        for sequence in sequences {
            let name: String = sequence.get(1);
            let start: i64 = sequence.get(2);
            let state =
                template.query_one(&format!("SELECT last_value, is_called FROM {name}"), &[])?;
            if state.get::<_, bool>(1) || state.get::<_, i64>(0) != start {
                fixed.push(sequence.get(0));
            }
        }
        fixed.sort_unstable();
        Ok(Baseline {
            fixed,
            sequences: any_sequence,
        })
    }

    /// `COMMENT ON DATABASE` for the template, recording this baseline.
    pub(crate) fn comment_sql(&self, database: &str) -> String {
        let oids: Vec<String> = self.fixed.iter().map(u32::to_string).collect();
        format!(
            "COMMENT ON DATABASE {} IS {}",
            postgres_protocol::escape::escape_identifier(database),
            escape_literal(&format!(
                "{MARK} sequences: {}; fixed relations: {}",
                if self.sequences { "yes" } else { "no" },
                oids.join(" ")
            ))
        )
    }

    /// The baseline a template's comment records; `None` for any other comment (one written
    /// by an older version, or by someone else): its clones are dropped, never recycled.
    pub(crate) fn parse(comment: &str) -> Option<Baseline> {
        let rest = comment.strip_prefix(MARK)?.trim_start();
        let (sequences, oids) = rest
            .strip_prefix("sequences: ")?
            .split_once("; fixed relations:")?;
        let sequences = match sequences {
            "yes" => true,
            "no" => false,
            _ => return None,
        };
        let fixed = oids
            .split_whitespace()
            .map(|oid| oid.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        Some(Baseline { fixed, sequences })
    }

    /// Whether a finished clone with no row written anywhere (see [`untouched`]) needs no
    /// closer look: only a used sequence could have changed it, and there is none.
    pub(crate) fn untouched_is_enough(&self) -> bool {
        !self.sequences
    }
}

/// Why a finished test's database is dropped rather than recycled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unrecyclable {
    /// The server does not count writes (`track_counts` off), so nothing can be known.
    NotCounted,
    /// The test changed the schema or other catalog contents (DDL, a temporary table, a
    /// large object, a database setting...).
    Catalog,
    /// The test wrote to a table or sequence the template had filled or used.
    Fixed(String),
}

/// Whether no row was inserted, updated or deleted in the finished database `name`, in any
/// table or catalog, since it was cloned or last reset (the server's per-database counters,
/// read from the administrative connection), and no setting was attached to it. False when
/// the server does not count.
pub(crate) fn untouched(admin: &mut Client, name: &str) -> Result<bool, postgres::Error> {
    Ok(admin
        .query_opt(
            "SELECT current_setting('track_counts')::bool \
                    AND s.tup_inserted + s.tup_updated + s.tup_deleted = 0 \
                    AND NOT EXISTS (SELECT FROM pg_db_role_setting r WHERE r.setdatabase = s.datid) \
               FROM pg_stat_database s WHERE s.datname = $1",
            &[&name],
        )?
        .is_some_and(|row| row.get(0)))
}

/// Empties what the test wrote, through a session in the finished database (no other session
/// may be in it), and resets its statistics so that the next test's writes are counted from
/// zero. `Ok(Err(_))`: nothing was changed and the database must be dropped.
///
/// `untouched`: [`untouched`] said no row was written; then only the sequences are looked at.
pub(crate) fn reset(
    database: &mut Client,
    baseline: &Baseline,
    untouched: bool,
) -> Result<Result<(), Unrecyclable>, postgres::Error> {
    if untouched {
        let used: bool = database
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_statio_user_sequences WHERE blks_read + blks_hit > 0)",
                &[],
            )?
            .get(0);
        if !used {
            return Ok(Ok(()));
        }
    }
    // Statistics reach the shared counters when a backend exits (or goes idle a while): the
    // caller waited for the test's sessions to end, so its writes are all counted here.
    let counts = database.query_one(
        "SELECT current_setting('track_counts')::bool, \
           (SELECT coalesce(sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del), 0)::int8 \
              FROM pg_stat_all_tables s JOIN pg_class c ON c.oid = s.relid \
             WHERE s.schemaname IN ('pg_catalog', 'information_schema') AND NOT c.relisshared) \
           + (SELECT count(*) FROM pg_db_role_setting \
               WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())), \
           ARRAY(SELECT relid FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0), \
           ARRAY(SELECT relid FROM pg_statio_user_sequences WHERE blks_read + blks_hit > 0)",
        &[],
    )?;
    if !counts.get::<_, bool>(0) {
        return Ok(Err(Unrecyclable::NotCounted));
    }
    if counts.get::<_, i64>(1) > 0 {
        return Ok(Err(Unrecyclable::Catalog));
    }
    let written: Vec<u32> = counts.get(2);
    let sequences: Vec<u32> = counts.get(3);
    if written.is_empty() && sequences.is_empty() {
        return Ok(Ok(()));
    }
    // A table that references an emptied one must be emptied with it (TRUNCATE refuses
    // otherwise); it is empty unless the template filled it, which the baseline tells.
    let tables = database.query(
        "WITH RECURSIVE closure(oid) AS ( \
             SELECT unnest($1::oid[]) \
             UNION SELECT c.conrelid FROM pg_constraint c JOIN closure ON c.confrelid = closure.oid \
              WHERE c.contype = 'f') \
         SELECT oid, oid::regclass::text FROM closure",
        &[&written],
    )?;
    let sequence_names = database.query(
        "SELECT seqrelid, seqrelid::regclass::text FROM pg_sequence WHERE seqrelid = ANY($1)",
        &[&sequences],
    )?;
    let mut names = Vec::new();
    for row in &tables {
        if baseline.fixed.binary_search(&row.get(0)).is_ok() {
            return Ok(Err(Unrecyclable::Fixed(row.get(1))));
        }
        names.push(row.get::<_, String>(1));
    }
    for row in &sequence_names {
        if baseline.fixed.binary_search(&row.get(0)).is_ok() {
            return Ok(Err(Unrecyclable::Fixed(row.get(1))));
        }
    }
    let mut transaction = database.transaction()?;
    if !names.is_empty() {
        transaction.batch_execute(&format!("TRUNCATE TABLE {}", names.join(", ")))?;
    }
    transaction.execute(
        "SELECT setval(seqrelid, seqstart, false) FROM pg_sequence WHERE seqrelid = ANY($1)",
        &[&sequences],
    )?;
    transaction.commit()?;
    // Our own writes (the truncation's catalog rows) must reach the counters before they are
    // zeroed, or the next test would find them and refuse to recycle.
    database.batch_execute("SELECT pg_stat_force_next_flush()")?;
    database.batch_execute("SELECT pg_stat_reset()")?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_survives_its_comment_and_a_foreign_comment_is_no_baseline() {
        for sequences in [true, false] {
            let baseline = Baseline {
                fixed: vec![16384, 16390],
                sequences,
            };
            let sql = baseline.comment_sql("mtt_x");
            let literal = sql.split(" IS ").nth(1).expect("a literal");
            let text = literal.trim_matches(|c| c == '\'' || c == ' ' || c == 'E');
            assert_eq!(Baseline::parse(text), Some(baseline));
        }
        assert_eq!(
            Baseline::parse(&format!("{MARK} sequences: no; fixed relations:")),
            Some(Baseline::default())
        );
        assert_eq!(Baseline::parse("the team's template"), None);
        assert_eq!(
            Baseline::parse(&format!("{MARK} sequences: no; fixed relations: 12 x")),
            None
        );
        assert_eq!(
            Baseline::parse(&format!("{MARK} fixed relations: 12")),
            None
        );
    }

    #[test]
    fn a_finished_database_names_its_template() {
        let comment = finished_comment("mtt_0badcafe_0123456789abcdef");
        assert_eq!(
            finished_template(&comment),
            Some("mtt_0badcafe_0123456789abcdef")
        );
        assert_eq!(finished_template("someone's note"), None);
        assert!(finished_pattern().ends_with('%'));
    }
}
