//! The plan stage, pure (no I/O): from the embedded set, the history rows and the settings,
//! decide what runs, in which transaction units, sent in which messages.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::error::Unfinished;
use crate::history::{AppliedMigration, Fingerprint, HistoryTables};
use crate::lock::LockScope;
use crate::migration::Direction;
use crate::safety::SafetyPolicy;
use crate::settings::Settings;
use crate::terms::MigrationStatus;
use crate::{Error, Migration, Phase};

/// At most this many migrations, or about this much SQL, go into one message.
const MESSAGE_MIGRATIONS: usize = 100;
const MESSAGE_BYTES: usize = 1 << 20;

/// One migration, one way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step<'m> {
    pub(crate) migration: &'m Migration,
    pub(crate) direction: Direction,
}

impl<'m> Step<'m> {
    pub(crate) fn up(migration: &'m Migration) -> Self {
        Step {
            migration,
            direction: Direction::Up,
        }
    }

    pub(crate) fn down(migration: &'m Migration) -> Self {
        Step {
            migration,
            direction: Direction::Down,
        }
    }

    /// The SQL this step runs. A step going down is only planned for a migration with a DOWN
    /// section (see [`reversible`]).
    pub(crate) fn section(&self) -> &'m crate::Section {
        self.migration
            .section(self.direction)
            .expect("a step going down is planned only for a reversible migration")
    }
}

/// What the executor runs as one piece: a value that can be run again from the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unit<'m> {
    /// Each step in its own transaction together with its history rows, all of them sent in
    /// one message (one round trip).
    Transactions(Vec<Step<'m>>),
    /// All steps in one transaction, sent in these messages (ranges of `steps`).
    Group {
        steps: Vec<Step<'m>>,
        messages: Vec<Range<usize>>,
    },
    /// One step outside any transaction, statement by statement, its row `running` first.
    Statements(Step<'m>),
    /// One step in its own transaction, checked against the data-safety policy before
    /// `COMMIT`.
    Guarded(Step<'m>, SafetyPolicy),
    /// A migration without a DOWN section recorded as rolled back, running no SQL (its
    /// changes stay in the database).
    Forget(&'m Migration),
}

impl<'m> Unit<'m> {
    /// The steps, in the order they run.
    #[cfg(test)]
    fn steps(&self) -> &[Step<'m>] {
        match self {
            Unit::Transactions(steps) | Unit::Group { steps, .. } => steps,
            Unit::Statements(step) | Unit::Guarded(step, _) => std::slice::from_ref(step),
            Unit::Forget(_) => &[],
        }
    }
}

/// The settings that cannot work together with these migrations.
pub(crate) fn check_settings(migrations: &[Migration], settings: &Settings) -> Result<(), Error> {
    settings.tables.check()?;
    if settings.grouped && settings.safety.is_some() {
        return Err(Error::GroupedWithSafety);
    }
    if settings.grouped {
        if let Some(m) = migrations.iter().find(|m| !m.up().is_transactional()) {
            return Err(Error::GroupedNoTransaction {
                version: m.version(),
                path: m.path().to_owned(),
            });
        }
    }
    Ok(())
}

/// The migrations a run leaves applied: up to the target, in the run's environment.
pub(crate) fn selected<'m, 's>(
    migrations: &'m [Migration],
    settings: &'s Settings,
) -> impl Iterator<Item = &'m Migration> + use<'m, 's> {
    migrations
        .iter()
        .filter(|m| settings.within_target(m) && settings.in_environment(m))
}

/// The migrations a run would apply, after checking the history against the binary.
pub(crate) fn pending<'m>(
    migrations: &'m [Migration],
    settings: &Settings,
    applied: &[AppliedMigration],
) -> Result<Vec<&'m Migration>, Error> {
    phased(migrations, settings, applied).map(|(pending, _waiting)| pending)
}

/// The migrations a run would apply, and those pending that wait for the post-deploy phase
/// (see [`in_phase`]), after checking the history against the binary.
pub(crate) fn phased<'m>(
    migrations: &'m [Migration],
    settings: &Settings,
    applied: &[AppliedMigration],
) -> Result<(Vec<&'m Migration>, Vec<&'m Migration>), Error> {
    // A database that applied every migration a squash replaces has, as far as this binary
    // goes, applied the squash (`Migrator::run` records it so before applying anything).
    let reconciled = crate::squashed::reconcile(migrations, applied)?;
    let applied = &reconciled.applied;
    check_history(migrations, applied)?;
    let applied_versions: BTreeSet<i64> = applied.iter().map(|row| row.version).collect();
    let (pending, waiting) = in_phase(
        selected(migrations, settings)
            .filter(|m| !applied_versions.contains(&m.version()))
            .collect(),
        settings.phase,
    );
    for migration in &pending {
        check_untouched(migration, migration.up(), &settings.tables)?;
    }
    if let (Some(&highest_applied), false) = (applied_versions.last(), settings.allow_out_of_order)
    {
        if let Some(m) = pending
            .iter()
            .find(|m| m.version() < highest_applied && !m.allows_out_of_order())
        {
            return Err(Error::OutOfOrder {
                version: m.version(),
                name: m.name().to_owned(),
                path: m.path().to_owned(),
                highest_applied,
            });
        }
    }
    Ok((pending, waiting))
}

/// Splits what is pending (in version order) into what a run in `phase` applies and what
/// waits for the post-deploy phase.
///
/// In the pre-deploy phase a run stops before the first pending post-deploy migration: the
/// ones after it, whatever their phase, wait too, so migrations always apply in version order
/// and a pre-deploy migration never runs before an earlier post-deploy one it might rely on
/// without saying so. The post-deploy phase applies everything pending.
pub(crate) fn in_phase(
    pending: Vec<&Migration>,
    phase: Phase,
) -> (Vec<&Migration>, Vec<&Migration>) {
    let mut pending = pending;
    let waiting = match phase {
        Phase::PostDeploy => Vec::new(),
        Phase::PreDeploy => {
            let first_later = pending
                .iter()
                .position(|m| m.phase() == Phase::PostDeploy)
                .unwrap_or(pending.len());
            pending.split_off(first_later)
        }
    };
    (pending, waiting)
}

/// Refuses a section with a statement that drops, alters or truncates one of this runtime's
/// history tables (an older tool's history often had the same name, and a later migration
/// dropping it would drop ours inside the migration's transaction).
pub(crate) fn check_untouched(
    migration: &Migration,
    section: &crate::Section,
    tables: &HistoryTables,
) -> Result<(), Error> {
    use crate::source::lexer::{Lexer, Token, TokenKind};
    let (schema, table) = tables.names();
    let actions = format!("{table}_history");
    // Unquoted words compare as PostgreSQL folds them; quoted identifiers exactly.
    let ident = |token: &Token<'_>| match token.kind {
        TokenKind::Word => Some(token.text.to_lowercase()),
        TokenKind::QuotedIdentifier => {
            Some(token.text[1..token.text.len().saturating_sub(1)].replace("\"\"", "\""))
        }
        _ => None,
    };
    for statement in crate::source::statements::split(section.sql()) {
        let tokens: Vec<Token<'_>> = Lexer::new(statement.text)
            .filter(|t| !t.is_trivia())
            .collect();
        let verb = tokens.first().and_then(ident).unwrap_or_default();
        if !matches!(verb.as_str(), "drop" | "alter" | "truncate") {
            continue;
        }
        for (index, token) in tokens.iter().enumerate() {
            let Some(name) = ident(token) else { continue };
            if name != table && name != actions {
                continue;
            }
            // `other_schema.schema_migrations` is not ours.
            let qualifier = match index.checked_sub(2) {
                Some(at) if tokens[index - 1].text == "." => ident(&tokens[at]),
                _ => None,
            };
            if qualifier.is_some_and(|qualifier| qualifier != schema) {
                continue;
            }
            let offset = section.sql()[..statement.start].chars().count();
            return Err(Error::TouchesHistoryTable {
                version: migration.version(),
                name: migration.name().to_owned(),
                path: section.path().to_owned(),
                line: section.file_position(offset + 1).0,
                table: format!("{schema}.{name}"),
            });
        }
    }
    Ok(())
}

/// The checks on what is already applied: nothing unfinished, nothing the binary lacks, no
/// file changed since it was applied.
pub(crate) fn check_history(
    migrations: &[Migration],
    applied: &[AppliedMigration],
) -> Result<(), Error> {
    check_settled(migrations, applied)?;
    let in_binary: BTreeMap<i64, &Migration> =
        migrations.iter().map(|m| (m.version(), m)).collect();
    let missing: Vec<(i64, String)> = applied
        .iter()
        .filter(|row| !in_binary.contains_key(&row.version))
        .map(|row| (row.version, row.name.clone()))
        .collect();
    if !missing.is_empty() {
        return Err(Error::MissingFromBinary(missing));
    }
    for row in applied {
        let migration = in_binary[&row.version];
        if !migration.checksum().matches(&row.checksum) && migration.name() != row.name {
            return Err(version_conflict(row, migration));
        }
        if !migration.checksum().matches(&row.checksum) {
            return Err(Error::ChecksumMismatch {
                version: row.version,
                name: migration.name().to_owned(),
                path: migration.path().to_owned(),
                applied: row.checksum.clone(),
                embedded: migration.checksum(),
            });
        }
    }
    Ok(())
}

/// Two migrations under one version: the one the database applied and this binary's.
pub(crate) fn version_conflict(row: &AppliedMigration, migration: &Migration) -> Error {
    Error::VersionConflict {
        version: row.version,
        applied_name: row.name.clone(),
        name: migration.name().to_owned(),
        path: migration.path().to_owned(),
    }
}

/// Refuses while a no-transaction migration is `failed` or `running`: what it did is not
/// undone, and only a repair says how to go on.
pub(crate) fn check_settled(
    migrations: &[Migration],
    applied: &[AppliedMigration],
) -> Result<(), Error> {
    match applied
        .iter()
        .find(|row| row.status != MigrationStatus::Applied)
    {
        Some(row) => {
            let migration = migrations.iter().find(|m| m.version() == row.version);
            Err(Error::Unfinished(Box::new(unfinished(row, migration))))
        }
        None => Ok(()),
    }
}

/// What a stopped no-transaction migration ran, for the refusal that says how to resolve it.
fn unfinished(row: &AppliedMigration, migration: Option<&Migration>) -> Unfinished {
    let statements: Vec<(usize, u32, String)> = migration
        .map(|m| {
            let up = m.up();
            let mut position = crate::source::position::Cursor::new(up.sql(), up.line());
            crate::source::statements::split(up.sql())
                .enumerate()
                .map(|(index, statement)| {
                    let first_line = statement.text.lines().next().unwrap_or_default();
                    let line = position.line_at(statement.start);
                    (index + 1, line, first_line.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let total_statements = migration.map(|_| statements.len());
    // A failed migration's record says which statement failed; those before it ran.
    let ran = match failed_statement(row.error_message.as_deref()) {
        Some(failed) if row.status == MigrationStatus::Failed => failed - 1,
        _ => statements.len(),
    };
    Unfinished {
        version: row.version,
        name: row.name.clone(),
        path: migration.map(|m| m.path().to_owned()),
        status: row.status,
        error_message: row.error_message.clone(),
        statements_ran: statements.into_iter().take(ran).collect(),
        total_statements,
    }
}

/// The `k` of a recorded "(statement k of n)".
fn failed_statement(error_message: Option<&str>) -> Option<usize> {
    let message = error_message?;
    let after = &message[message.rfind("(statement ")? + "(statement ".len()..];
    after.split_whitespace().next()?.parse().ok()
}

/// The fingerprints of the histories a run finds nothing to do in: every migration it would
/// leave applied and, in the pre-deploy phase, also just those before the first post-deploy
/// one (a database between the two phases of a deploy).
pub(crate) fn expected_fingerprints(
    migrations: &[Migration],
    settings: &Settings,
) -> Vec<Fingerprint> {
    let all: Vec<&Migration> = selected(migrations, settings).collect();
    let mut fingerprints = vec![fingerprint_of(&all)];
    if settings.phase == Phase::PreDeploy {
        let (before, waiting) = in_phase(all, Phase::PreDeploy);
        if !waiting.is_empty() {
            fingerprints.push(fingerprint_of(&before));
        }
    }
    fingerprints
}

/// The fingerprint of a history holding exactly the migrations a run would leave applied.
#[cfg(test)]
pub(crate) fn expected_fingerprint(migrations: &[Migration], settings: &Settings) -> Fingerprint {
    fingerprint_of(&selected(migrations, settings).collect::<Vec<_>>())
}

/// The fingerprint of a history holding exactly `migrations`, applied.
fn fingerprint_of(migrations: &[&Migration]) -> Fingerprint {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;

    /// Feeds formatted text straight into the hash, allocating nothing per migration.
    struct Feed(Sha256);
    impl std::fmt::Write for Feed {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            self.0.update(text.as_bytes());
            Ok(())
        }
    }
    let mut feed = Feed(Sha256::new());
    let mut rows = 0;
    for migration in migrations {
        let separator = if rows == 0 { "" } else { "\n" };
        let _ = write!(feed, "{separator}{} ", migration.version());
        feed.0.update(migration.checksum().text());
        feed.0.update(b" applied");
        rows += 1;
    }
    let digest = feed.0.finalize();
    let mut sha256_hex = String::with_capacity(64);
    // The server aggregates no rows to NULL, shown as ''.
    for byte in digest.iter().filter(|_| rows > 0) {
        let _ = write!(sha256_hex, "{byte:02x}");
    }
    Fingerprint { rows, sha256_hex }
}

/// The units that apply `pending`, in order.
///
/// Runs of consecutive transactional migrations share messages of at most 100 migrations
/// (one transaction each); behind a pooler ([`LockScope::Transaction`]) another process may
/// commit between two of ours, so there each message holds one migration and the history
/// is re-checked inside each transaction. Grouped mode is one unit in several messages;
/// the data-safety policy checks each migration in its own unit.
pub(crate) fn up<'m>(pending: &[&'m Migration], settings: &Settings) -> Vec<Unit<'m>> {
    let steps: Vec<Step<'m>> = pending.iter().map(|m| Step::up(m)).collect();
    if steps.is_empty() {
        return Vec::new();
    }
    if settings.grouped {
        let messages = messages(&steps);
        return vec![Unit::Group { steps, messages }];
    }
    let mut units = Vec::new();
    for run in
        steps.chunk_by(|a, b| a.section().is_transactional() == b.section().is_transactional())
    {
        if !run[0].section().is_transactional() {
            units.extend(run.iter().map(|&step| Unit::Statements(step)));
        } else if let Some(policy) = settings.safety {
            units.extend(run.iter().map(|&step| Unit::Guarded(step, policy)));
        } else if settings.lock_scope == LockScope::Transaction {
            units.extend(run.iter().map(|&step| Unit::Transactions(vec![step])));
        } else {
            units.extend(
                messages(run)
                    .into_iter()
                    .map(|range| Unit::Transactions(run[range].to_vec())),
            );
        }
    }
    units
}

/// The units that revert `targets`, in the order given: one migration per unit; one without a
/// DOWN section is forgotten (planned so only when the settings allow it, see [`revertible`]).
pub(crate) fn down<'m>(targets: &[&'m Migration]) -> Vec<Unit<'m>> {
    targets
        .iter()
        .map(|m| match m.down() {
            Some(_) => single(Step::down(m)),
            None => Unit::Forget(m),
        })
        .collect()
}

/// The binary's migration `version`, to be reverted: it must have a DOWN section, unless the
/// settings let a run go through irreversible ones.
pub(crate) fn revertible<'m>(
    migrations: &'m [Migration],
    settings: &Settings,
    version: i64,
) -> Result<&'m Migration, Error> {
    match reversible(migrations, version) {
        Err(Error::Irreversible { .. }) if settings.through_irreversible => Ok(migrations
            .iter()
            .find(|m| m.version() == version)
            .expect("reversible() found it")),
        other => other,
    }
}

/// One step in a unit of its own.
pub(crate) fn single(step: Step<'_>) -> Unit<'_> {
    if step.section().is_transactional() {
        Unit::Transactions(vec![step])
    } else {
        Unit::Statements(step)
    }
}

/// The binary's migration `version`, if it can be reverted.
pub(crate) fn reversible(migrations: &[Migration], version: i64) -> Result<&Migration, Error> {
    let migration = migrations
        .iter()
        .find(|m| m.version() == version)
        .ok_or_else(|| Error::MissingFromBinary(vec![(version, String::new())]))?;
    match migration.down() {
        Some(_) => Ok(migration),
        None => Err(Error::Irreversible {
            version,
            name: migration.name().to_owned(),
            path: migration.path().to_owned(),
        }),
    }
}

/// Splits `steps` into messages of at most [`MESSAGE_MIGRATIONS`] steps and, unless one step
/// alone is larger, [`MESSAGE_BYTES`] of SQL. One message of thousands of migrations makes the
/// server parse and hold all of them at once, which measured slower than a hundred at a time
/// (tests/bench/BENCHMARKS.md).
pub(crate) fn messages(steps: &[Step<'_>]) -> Vec<Range<usize>> {
    let mut messages = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, step) in steps.iter().enumerate() {
        let size = step.section().sql().len();
        if index > start && (index - start == MESSAGE_MIGRATIONS || bytes + size > MESSAGE_BYTES) {
            messages.push(start..index);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < steps.len() {
        messages.push(start..steps.len());
    }
    messages
}

/// `messages` with the message holding step `at` cut in two before it (no change when `at`
/// already starts a message).
pub(crate) fn split_before(messages: &[Range<usize>], at: usize) -> Vec<Range<usize>> {
    messages
        .iter()
        .flat_map(|range| {
            if range.start < at && at < range.end {
                vec![range.start..at, at..range.end]
            } else {
                vec![range.clone()]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checksum, Section};

    fn migration(version: i64, transactional: bool, sql: &str) -> Migration {
        Migration::owned(
            version,
            format!("m{version}"),
            Section::owned(
                format!("{version:03}_m{version}.sql"),
                1,
                transactional,
                sql.to_owned(),
                None,
            ),
            Some(Section::owned(
                format!("{version:03}_m{version}.sql"),
                3,
                true,
                "SELECT 1;".to_owned(),
                None,
            )),
            Checksum::of_up_section(sql, transactional),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            None,
            Phase::PreDeploy,
            false,
            Vec::new(),
            Vec::new(),
        )
    }

    fn set(shape: &str) -> Vec<Migration> {
        // `t`: transactional, `n`: no-transaction.
        shape
            .chars()
            .enumerate()
            .map(|(i, kind)| migration(i as i64 + 1, kind == 't', "CREATE TABLE x (id int);"))
            .collect()
    }

    /// `p`: pre-deploy, `P`: post-deploy, `o`: pre-deploy with `-- migrate:out-of-order ok`.
    fn phased_set(shape: &str) -> Vec<Migration> {
        shape
            .chars()
            .enumerate()
            .map(|(i, kind)| {
                let plain = migration(i as i64 + 1, true, "CREATE TABLE x (id int);");
                let phase = if kind == 'P' {
                    Phase::PostDeploy
                } else {
                    Phase::PreDeploy
                };
                Migration::owned(
                    plain.version(),
                    plain.name().to_owned(),
                    plain.up().clone(),
                    None,
                    plain.checksum(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    None,
                    phase,
                    kind == 'o',
                    Vec::new(),
                    Vec::new(),
                )
            })
            .collect()
    }

    fn versions_of(list: &[&Migration]) -> Vec<i64> {
        list.iter().map(|m| m.version()).collect()
    }

    #[test]
    fn the_pre_deploy_phase_stops_before_the_first_pending_post_deploy_migration() {
        let all = phased_set("ppPpP");
        let (pending, waiting) = phased_plan(&all, Phase::PreDeploy, &[]);
        // 4 is pre-deploy but comes after post-deploy 3: it waits, so versions stay in order.
        assert_eq!((pending, waiting), (vec![1, 2], vec![3, 4, 5]));
        let (pending, waiting) = phased_plan(&all, Phase::PostDeploy, &[]);
        assert_eq!((pending, waiting), (vec![1, 2, 3, 4, 5], vec![]));
        // Once 3 is applied, the pre-deploy phase goes on up to the next post-deploy one.
        let applied: Vec<AppliedMigration> = (1..=3)
            .map(|v| row(v, MigrationStatus::Applied, &all))
            .collect();
        let (pending, waiting) = phased_plan(&all, Phase::PreDeploy, &applied);
        assert_eq!((pending, waiting), (vec![4], vec![5]));
    }

    fn phased_plan(
        all: &[Migration],
        phase: Phase,
        applied: &[AppliedMigration],
    ) -> (Vec<i64>, Vec<i64>) {
        let settings = Settings {
            phase,
            ..Settings::default()
        };
        let (pending, waiting) = phased(all, &settings, applied).unwrap();
        (versions_of(&pending), versions_of(&waiting))
    }

    #[test]
    fn the_fast_path_knows_a_database_between_the_two_phases() {
        let all = phased_set("ppP");
        let settings = Settings::default();
        let expected = expected_fingerprints(&all, &settings);
        assert_eq!(expected.len(), 2);
        assert_eq!(expected[0], fingerprint_of(&all.iter().collect::<Vec<_>>()));
        assert_eq!(expected[1], fingerprint_of(&[&all[0], &all[1]]));
        // The post-deploy phase has one history to find: everything applied.
        let post = Settings {
            phase: Phase::PostDeploy,
            ..Settings::default()
        };
        assert_eq!(expected_fingerprints(&all, &post).len(), 1);
    }

    #[test]
    fn out_of_order_ok_lets_one_migration_below_the_highest_applied() {
        let all = phased_set("pop");
        let applied = [
            row(1, MigrationStatus::Applied, &all),
            row(3, MigrationStatus::Applied, &all),
        ];
        let (pending, _) = phased_plan(&all, Phase::PreDeploy, &applied);
        assert_eq!(pending, [2]);
        // Without the directive the same history is refused.
        let plain = phased_set("ppp");
        let applied = [
            row(1, MigrationStatus::Applied, &plain),
            row(3, MigrationStatus::Applied, &plain),
        ];
        assert!(matches!(
            pending_of(&plain, &applied),
            Err(Error::OutOfOrder {
                version: 2,
                highest_applied: 3,
                ..
            })
        ));
    }

    fn pending_of(all: &[Migration], applied: &[AppliedMigration]) -> Result<Vec<i64>, Error> {
        pending(all, &Settings::default(), applied).map(|list| versions_of(&list))
    }

    fn versions(unit: &Unit<'_>) -> Vec<i64> {
        unit.steps().iter().map(|s| s.migration.version()).collect()
    }

    fn row(version: i64, status: MigrationStatus, migrations: &[Migration]) -> AppliedMigration {
        let checksum = migrations
            .iter()
            .find(|m| m.version() == version)
            .map_or_else(|| "sha256:00".to_owned(), |m| m.checksum().to_string());
        AppliedMigration {
            version,
            name: format!("m{version}"),
            checksum,
            status,
            applied_at_micros: 0,
            execution_time_ms: 0,
            applied_by: "test".to_owned(),
            error_message: None,
        }
    }

    #[test]
    fn mixed_sets_alternate_message_units_and_statement_units() {
        let all = set("ttnttn");
        let pending: Vec<&Migration> = all.iter().collect();
        let units = up(&pending, &Settings::default());
        let shapes: Vec<(&str, Vec<i64>)> = units
            .iter()
            .map(|unit| {
                let kind = match unit {
                    Unit::Transactions(_) => "transactions",
                    Unit::Statements(_) => "statements",
                    Unit::Group { .. } => "group",
                    Unit::Guarded(..) => "guarded",
                    Unit::Forget(_) => "forget",
                };
                (kind, versions(unit))
            })
            .collect();
        assert_eq!(
            shapes,
            [
                ("transactions", vec![1, 2]),
                ("statements", vec![3]),
                ("transactions", vec![4, 5]),
                ("statements", vec![6]),
            ]
        );
    }

    #[test]
    fn long_runs_go_in_messages_of_one_hundred() {
        let all = set(&"t".repeat(250));
        let pending: Vec<&Migration> = all.iter().collect();
        let units = up(&pending, &Settings::default());
        let sizes: Vec<usize> = units.iter().map(|u| u.steps().len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
    }

    #[test]
    fn a_large_migration_gets_a_message_of_its_own() {
        let big = "SELECT 1;\n".repeat(MESSAGE_BYTES / 10 + 1);
        let all = [
            migration(1, true, "SELECT 1;"),
            migration(2, true, &big),
            migration(3, true, "SELECT 1;"),
        ];
        let pending: Vec<&Migration> = all.iter().collect();
        let units = up(&pending, &Settings::default());
        let groups: Vec<Vec<i64>> = units.iter().map(versions).collect();
        assert_eq!(groups, [vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn grouped_mode_is_one_unit_in_several_messages() {
        let all = set(&"t".repeat(250));
        let pending: Vec<&Migration> = all.iter().collect();
        let settings = Settings {
            grouped: true,
            ..Settings::default()
        };
        let units = up(&pending, &settings);
        assert_eq!(units.len(), 1);
        let Unit::Group { steps, messages } = &units[0] else {
            panic!("expected a group, got {units:?}");
        };
        assert_eq!(steps.len(), 250);
        assert_eq!(messages, &[0..100, 100..200, 200..250]);
    }

    #[test]
    fn grouped_mode_refuses_a_no_transaction_migration_and_the_safety_policy() {
        let grouped = Settings {
            grouped: true,
            ..Settings::default()
        };
        let error = check_settings(&set("tn"), &grouped).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("002_m2.sql runs outside any transaction"),
            "{error}"
        );
        let guarded = Settings {
            safety: Some(SafetyPolicy::default()),
            ..grouped
        };
        assert!(check_settings(&set("tt"), &guarded).is_err());
    }

    #[test]
    fn behind_a_pooler_each_message_holds_one_migration() {
        let all = set("ttt");
        let pending: Vec<&Migration> = all.iter().collect();
        let settings = Settings {
            lock_scope: LockScope::Transaction,
            ..Settings::default()
        };
        let groups: Vec<Vec<i64>> = up(&pending, &settings).iter().map(versions).collect();
        assert_eq!(groups, [vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn the_safety_policy_guards_each_transactional_migration_on_its_own() {
        let all = set("tnt");
        let pending: Vec<&Migration> = all.iter().collect();
        let settings = Settings {
            safety: Some(SafetyPolicy::default()),
            ..Settings::default()
        };
        let units = up(&pending, &settings);
        assert!(matches!(units[0], Unit::Guarded(..)));
        assert!(matches!(units[1], Unit::Statements(_)));
        assert!(matches!(units[2], Unit::Guarded(..)));
    }

    #[test]
    fn targets_and_environments_choose_what_is_pending() {
        let mut all = set("tttt");
        all[1] = Migration::owned(
            2,
            "production_only".to_owned(),
            all[1].up().clone(),
            None,
            all[1].checksum(),
            Vec::new(),
            vec!["production".to_owned()],
            Vec::new(),
            None,
            Phase::PreDeploy,
            false,
            Vec::new(),
            Vec::new(),
        );
        let versions_of = |settings: &Settings| -> Vec<i64> {
            pending(&all, settings, &[])
                .unwrap()
                .iter()
                .map(|m| m.version())
                .collect()
        };
        assert_eq!(versions_of(&Settings::default()), [1, 3, 4]);
        let production = Settings {
            environment: Some("Production".to_owned()),
            ..Settings::default()
        };
        assert_eq!(versions_of(&production), [1, 2, 3, 4]);
        let targeted = Settings {
            target: Some(3),
            ..production
        };
        assert_eq!(versions_of(&targeted), [1, 2, 3]);
    }

    #[test]
    fn the_history_decides_what_is_left_and_what_is_refused() {
        let all = set("tttt");
        let applied = [
            row(1, MigrationStatus::Applied, &all),
            row(3, MigrationStatus::Applied, &all),
        ];
        let error = pending(&all, &Settings::default(), &applied).unwrap_err();
        assert!(
            matches!(
                error,
                Error::OutOfOrder {
                    version: 2,
                    highest_applied: 3,
                    ..
                }
            ),
            "{error}"
        );
        let allowed = Settings {
            allow_out_of_order: true,
            ..Settings::default()
        };
        let left: Vec<i64> = pending(&all, &allowed, &applied)
            .unwrap()
            .iter()
            .map(|m| m.version())
            .collect();
        assert_eq!(left, [2, 4]);

        let unknown = [row(9, MigrationStatus::Applied, &all)];
        assert!(matches!(
            pending(&all, &Settings::default(), &unknown),
            Err(Error::MissingFromBinary(missing)) if missing == [(9, "m9".to_owned())]
        ));
        let mut edited = row(1, MigrationStatus::Applied, &all);
        edited.checksum = "sha256:00".to_owned();
        assert!(matches!(
            pending(&all, &Settings::default(), &[edited]),
            Err(Error::ChecksumMismatch { version: 1, .. })
        ));
        let running = [row(1, MigrationStatus::Running, &all)];
        assert!(matches!(
            pending(&all, &Settings::default(), &running),
            Err(Error::Unfinished(unfinished)) if unfinished.status == MigrationStatus::Running
        ));
    }

    #[test]
    fn going_down_is_one_unit_per_migration_in_the_order_given() {
        let all = set("tnt");
        let targets: Vec<&Migration> = all.iter().rev().collect();
        let units = down(&targets);
        let shapes: Vec<(bool, Vec<i64>, Direction)> = units
            .iter()
            .map(|u| {
                (
                    matches!(u, Unit::Statements(_)),
                    versions(u),
                    u.steps()[0].direction,
                )
            })
            .collect();
        assert_eq!(
            shapes,
            [
                (false, vec![3], Direction::Down),
                (false, vec![2], Direction::Down),
                (false, vec![1], Direction::Down),
            ],
            "the DOWN sections here are transactional"
        );
    }

    #[test]
    fn going_down_through_an_irreversible_migration_forgets_it_only_when_allowed() {
        let mut all = set("tt");
        all[1] = Migration::owned(
            2,
            "m2".to_owned(),
            all[1].up().clone(),
            None,
            all[1].checksum(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            None,
            Phase::PreDeploy,
            false,
            Vec::new(),
            Vec::new(),
        );
        assert!(matches!(
            revertible(&all, &Settings::default(), 2),
            Err(Error::Irreversible { version: 2, .. })
        ));
        let through = Settings {
            through_irreversible: true,
            ..Settings::default()
        };
        let targets = vec![
            revertible(&all, &through, 2).unwrap(),
            revertible(&all, &through, 1).unwrap(),
        ];
        let units = down(&targets);
        assert!(matches!(units[0], Unit::Forget(m) if m.version() == 2));
        assert!(
            matches!(&units[1], Unit::Transactions(steps) if steps[0].migration.version() == 1)
        );
    }

    #[test]
    fn splitting_a_message_before_a_step() {
        assert_eq!(
            split_before(&[0..100, 100..200], 130),
            [0..100, 100..130, 130..200]
        );
        assert_eq!(split_before(&[0..100, 100..200], 100), [0..100, 100..200]);
        let whole = vec![0..5, 5..9];
        assert_eq!(split_before(&whole, 5), whole);
        assert_eq!(split_before(&whole, 0), whole);
    }

    #[test]
    fn statements_that_change_the_history_table_are_found() {
        let tables = HistoryTables::new("public", "schema_migrations");
        let refused = |sql: &str| {
            let m = migration(7, true, sql);
            check_untouched(&m, m.up(), &tables).err()
        };
        for sql in [
            "CREATE TABLE t (id int);\nDROP TABLE IF EXISTS schema_migrations;",
            "ALTER TABLE public.schema_migrations RENAME TO old;",
            "TRUNCATE \"schema_migrations_history\";",
            "DROP TABLE IF EXISTS Schema_Migrations CASCADE;",
        ] {
            assert!(
                matches!(
                    refused(sql),
                    Some(Error::TouchesHistoryTable { version: 7, .. })
                ),
                "{sql}"
            );
        }
        let Some(Error::TouchesHistoryTable { line, table, .. }) =
            refused("CREATE TABLE t (id int);\nDROP TABLE IF EXISTS schema_migrations;")
        else {
            unreachable!()
        };
        assert_eq!((line, table.as_str()), (2, "public.schema_migrations"));
        for sql in [
            "DROP TABLE legacy.schema_migrations;",
            "DROP TABLE \"Schema_Migrations\";",
            "SELECT * FROM schema_migrations;",
            "CREATE TABLE schema_migrations_archive (id int);",
            "INSERT INTO t VALUES ('DROP TABLE schema_migrations');",
        ] {
            assert!(refused(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn the_fingerprint_of_nothing_is_empty() {
        let none = expected_fingerprint(&[], &Settings::default());
        assert_eq!((none.rows, none.sha256_hex.as_str()), (0, ""));
        let two = expected_fingerprint(&set("tt"), &Settings::default());
        assert_eq!((two.rows, two.sha256_hex.len()), (2, 64));
    }
}
