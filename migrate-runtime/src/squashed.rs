//! Squashes in a history: a database that applied every migration a squash replaces takes
//! the squash as applied (recorded without running it); one that applied only some is refused.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::AppliedMigration;
use crate::terms::MigrationStatus;
use crate::{Error, Migration, PartlySquashed};

/// A history as this binary reads it.
#[derive(Debug)]
pub(crate) struct Reconciled<'m> {
    /// The rows, with the rows a squash replaces standing as one row of the squash.
    pub(crate) applied: Vec<AppliedMigration>,
    /// Squashes to record in place of the rows of the versions they replace (no SQL runs).
    pub(crate) to_record: Vec<(&'m Migration, Vec<i64>)>,
}

/// Reads `applied` through the squashes among `migrations`.
pub(crate) fn reconcile<'m>(
    migrations: &'m [Migration],
    applied: &[AppliedMigration],
) -> Result<Reconciled<'m>, Error> {
    let mut rows: BTreeMap<i64, AppliedMigration> = applied
        .iter()
        .map(|row| (row.version, row.clone()))
        .collect();
    let mut to_record = Vec::new();
    for squash in migrations.iter().filter(|m| m.replaces().next().is_some()) {
        let recorded = rows
            .get(&squash.version())
            .is_some_and(|row| squash.checksum().matches(&row.checksum));
        if recorded {
            continue;
        }
        let replaced: Vec<(i64, &str)> = squash.replaces().collect();
        let mut present = Vec::new();
        let mut missing = Vec::new();
        let mut differing = Vec::new();
        for &(version, checksum) in &replaced {
            match rows.get(&version) {
                // A failed or running row is for the history checks to explain.
                Some(row) if row.status != MigrationStatus::Applied => {
                    return Ok(unchanged(applied))
                }
                Some(row) if !row.checksum.eq_ignore_ascii_case(checksum) => {
                    present.push(version);
                    differing.push(version);
                }
                Some(_) => present.push(version),
                None => missing.push(version),
            }
        }
        if present.is_empty() {
            // A fresh database (as far as this squash goes): the squash runs as a migration.
            continue;
        }
        if !missing.is_empty() || !differing.is_empty() {
            let versions: BTreeSet<i64> = replaced.iter().map(|(v, _)| *v).collect();
            return Err(Error::PartlySquashed(Box::new(PartlySquashed {
                version: squash.version(),
                name: squash.name().to_owned(),
                path: squash.path().to_owned(),
                first: versions.first().copied().unwrap_or_default(),
                last: versions.last().copied().unwrap_or_default(),
                applied: present,
                missing,
                differing,
            })));
        }
        let last = rows
            .get(&present[present.len() - 1])
            .cloned()
            .expect("present rows exist");
        for version in &present {
            rows.remove(version);
        }
        rows.insert(
            squash.version(),
            AppliedMigration {
                version: squash.version(),
                name: squash.name().to_owned(),
                checksum: squash.checksum().to_string(),
                status: MigrationStatus::Applied,
                execution_time_ms: 0,
                error_message: None,
                ..last
            },
        );
        to_record.push((squash, present));
    }
    Ok(Reconciled {
        applied: rows.into_values().collect(),
        to_record,
    })
}

fn unchanged(applied: &[AppliedMigration]) -> Reconciled<'static> {
    Reconciled {
        applied: applied.to_vec(),
        to_record: Vec::new(),
    }
}
