//! The generated workload: N migrations, each creating a table with two indexes and inserting
//! ten rows, written in each tool's file layout, plus one file for `psql -1 -f`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub(crate) struct Workload {
    pub(crate) n: usize,
    dir: tempfile::TempDir,
    pub(crate) ours: Vec<migrate_runtime::Migration>,
    pub(crate) refinery: Vec<refinery::Migration>,
}

/// Migration `i`'s SQL (the same text for every tool).
pub(crate) fn sql(i: usize) -> String {
    format!(
        "CREATE TABLE bench_{i} (id bigint NOT NULL, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());\n\
         CREATE INDEX bench_{i}_id ON bench_{i} (id);\n\
         CREATE INDEX bench_{i}_name ON bench_{i} (name);\n\
         INSERT INTO bench_{i} (id, name) SELECT g, 'row ' || g FROM generate_series(1, 10) g;\n"
    )
}

/// Writes migrations `1..=n` in our layout (`{version}_{name}.sql`) under `dir`.
pub(crate) fn write_ours(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 1..=n {
        std::fs::write(dir.join(format!("{i:05}_bench_{i}.sql")), sql(i)).unwrap();
    }
}

/// The same in refinery's layout (`V{version}__{name}.sql`).
pub(crate) fn write_refinery(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 1..=n {
        std::fs::write(dir.join(format!("V{i}__bench_{i}.sql")), sql(i)).unwrap();
    }
}

impl Workload {
    pub(crate) fn generate(n: usize) -> Workload {
        let dir = tempfile::tempdir().unwrap();
        write_ours(&dir.path().join("ours"), n);
        write_refinery(&dir.path().join("refinery"), n);
        // dbmate wants both section markers; sqlx reads `{version}_{name}.sql` like we do.
        let dbmate = dir.path().join("dbmate");
        std::fs::create_dir_all(&dbmate).unwrap();
        for i in 1..=n {
            std::fs::write(
                dbmate.join(format!("{i:05}_bench_{i}.sql")),
                format!("-- migrate:up\n{}-- migrate:down\n", sql(i)),
            )
            .unwrap();
        }
        let mut all = String::new();
        for i in 1..=n {
            let _ = write!(all, "{}", sql(i));
        }
        std::fs::write(dir.path().join("all.sql"), all).unwrap();
        let ours = migrate_runtime::source::read_dir(dir.path(), "ours")
            .expect("the generated migrations parse")
            .migrations;
        let refinery = refinery::load_sql_migrations(dir.path().join("refinery"))
            .expect("refinery loads them");
        assert_eq!((ours.len(), refinery.len()), (n, n));
        Workload {
            n,
            dir,
            ours,
            refinery,
        }
    }

    /// The directory a process-run peer reads.
    pub(crate) fn dir_for(&self, tool: crate::tools::Tool) -> PathBuf {
        match tool {
            crate::tools::Tool::Dbmate => self.dir.path().join("dbmate"),
            _ => self.dir.path().join("ours"),
        }
    }

    pub(crate) fn all_sql(&self) -> PathBuf {
        self.dir.path().join("all.sql")
    }
}
