//! The names of a persistent template and its clones: what a migration set's template is keyed
//! by (pure: no database).

use sha2::{Digest, Sha256};

use super::hex;
use crate::Migrator;

/// What this version of the crate records on a template (see `recycle::Baseline`): a
/// template built by a version that recorded something else is rebuilt, not half-understood.
const TEMPLATE_FORMAT: u32 = 2;

/// What makes two templates interchangeable: the set's label (which test suite's set it is,
/// so that only that set's older templates count as stale), and everything that changes the
/// migrated database: each migration's version and checksum, the history table, the
/// environment, target and deploy phase the migrator applies, and the server's major version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TemplateKey {
    /// 8 hex digits naming the set (e.g. `my-crate:migrations`).
    pub(crate) label: String,
    /// 16 hex digits of the content.
    pub(crate) content: String,
}

impl TemplateKey {
    /// The key of `migrator`'s result for the set called `label` on a server of `major` version.
    pub(crate) fn new(label: &str, migrator: &Migrator<'_>, major: u32) -> TemplateKey {
        let label = hex(&Sha256::digest(format!("migrate-runtime test set {label}"))[..4]);
        let mut content = Sha256::new();
        for migration in migrator.migrations {
            content.update(format!(
                "{} {}\n",
                migration.version(),
                migration.checksum()
            ));
        }
        content.update(format!(
            "{}server {major}\nformat {TEMPLATE_FORMAT}\n",
            Self::settings(migrator)
        ));
        TemplateKey {
            label,
            content: hex(&content.finalize()[..8]),
        }
    }

    /// The migrator's settings that change the migrated database, as text (one per line).
    pub(crate) fn settings(migrator: &Migrator<'_>) -> String {
        let settings = &migrator.settings;
        format!(
            "history {}\nenvironment {:?}\ntarget {:?}\nphase {}\n",
            settings.tables.migrations(),
            settings.environment,
            settings.target,
            settings.phase
        )
    }

    /// The finished template (`mtt_`: it exists only once fully migrated).
    pub(crate) fn template(&self) -> String {
        format!("mtt_{}_{}", self.label, self.content)
    }

    /// The template while it is being migrated (`mtb_`), renamed to [`template`](Self::template) when done.
    pub(crate) fn building(&self) -> String {
        format!("mtb_{}_{}", self.label, self.content)
    }

    /// The prefix of this template's ready clones in the warm pool (`mtp_`).
    pub(crate) fn pool_prefix(&self) -> String {
        format!("mtp_{}_{}_", self.label, self.content)
    }

    /// A new name for a test's database (`mtd_`): unique across processes and machines.
    pub(crate) fn test_database(&self) -> String {
        format!("mtd_{}_{:016x}", self.label, fastrand::u64(..))
    }

    /// A new name for a clone in the warm pool.
    pub(crate) fn pool_database(&self) -> String {
        format!("{}{:08x}", self.pool_prefix(), fastrand::u32(..))
    }

    /// A `LIKE` pattern matching every template, building template and pool clone of this set
    /// (whatever its content), with `_` escaped.
    pub(crate) fn same_set_pattern(&self) -> [String; 3] {
        ["mtt", "mtb", "mtp"].map(|kind| format!("{kind}\\_{}\\_%", self.label))
    }

    /// Whether `database` (one matched by [`same_set_pattern`](Self::same_set_pattern)) belongs
    /// to this exact content.
    pub(crate) fn is_current(&self, database: &str) -> bool {
        database
            .get(13..)
            .is_some_and(|rest| rest.starts_with(&self.content))
    }

    /// The advisory lock under which this set's template is built and its stale ones dropped.
    pub(crate) fn build_lock(&self) -> i64 {
        lock_key(&format!("migrate-runtime test template {}", self.label))
    }

    /// The advisory lock a process holds while it tops up this template's warm pool.
    pub(crate) fn fill_lock(&self) -> i64 {
        lock_key(&format!("migrate-runtime test pool {}", self.template()))
    }
}

fn lock_key(text: &str) -> i64 {
    let digest = Sha256::digest(text);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Migration;

    #[test]
    fn the_key_follows_the_content_settings_and_server_but_the_label_only_names_the_set() {
        let none: &[Migration] = &[];
        let plain = TemplateKey::new("app", &Migrator::new(none), 15);
        assert_eq!(plain, TemplateKey::new("app", &Migrator::new(none), 15));
        let other_table = Migrator::new(none).history_table("audit", "schema_migrations");
        let moved = TemplateKey::new("app", &other_table, 15);
        assert_eq!(moved.label, plain.label);
        assert_ne!(moved.content, plain.content);
        assert_ne!(
            TemplateKey::new("app", &Migrator::new(none), 16).content,
            plain.content
        );
        let later_phase = Migrator::new(none).phase(crate::Phase::PostDeploy);
        assert_ne!(
            TemplateKey::new("app", &later_phase, 15).content,
            plain.content
        );
        let other_set = TemplateKey::new("other", &Migrator::new(none), 15);
        assert_ne!(other_set.label, plain.label);
        assert_eq!(other_set.content, plain.content);
        // Every name fits PostgreSQL's 63-byte identifiers and is told apart by its prefix.
        for name in [
            plain.template(),
            plain.building(),
            plain.pool_database(),
            plain.test_database(),
        ] {
            assert!(name.len() <= 63, "{name}");
        }
        assert!(plain.is_current(&plain.template()));
        assert!(plain.is_current(&plain.pool_database()));
        assert!(!moved.is_current(&plain.template()));
    }
}
