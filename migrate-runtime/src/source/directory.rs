//! Reading a migrations directory: finding its files, pairing them according to the layout,
//! parsing each migration, and the checks that span files (duplicate versions, `requires`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::duration::parse_duration;
use super::file_name::{self, Layout, MigrationFile};
use super::lint;
use super::sections::{self, CheckedSection, Directive, DirectiveKind, Markers, RawSection};
use super::{Diagnostic, Diagnostics, Reporter};
use crate::{Checksum, LockTimeout, Migration, Phase, Section};

/// What [`read_dir`] found: the migrations in version order, and every file it read (so a
/// build can be told to watch them).
///
/// ```
/// let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
/// let loaded = migrate_runtime::source::read_dir(root, "../migrations")?;
/// assert_eq!(loaded.migrations.first().map(|m| m.version()), Some(1));
/// assert_eq!(loaded.files.len(), 11); // one file per migration in this layout
/// assert!(loaded.files.iter().all(|file| file.starts_with(root)));
/// # Ok::<(), migrate_runtime::source::Diagnostics>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The migrations, sorted by version.
    pub migrations: Vec<Migration>,
    /// Every file read, as `root.join(...)` paths.
    pub files: Vec<PathBuf>,
}

/// Reads and checks every migration in `root/dir`. Paths in the result and in diagnostics
/// are `dir/...`, so they read the same on every machine.
///
/// All problems in the directory are reported together; nothing is skipped silently.
///
/// ```
/// use std::path::Path;
///
/// // The repository's migrations, next to this crate.
/// let root = Path::new(env!("CARGO_MANIFEST_DIR"));
/// match migrate_runtime::source::read_dir(root, "../migrations") {
///     Ok(loaded) => println!("{} migrations", loaded.migrations.len()),
///     Err(problems) => eprintln!("{problems}"),
/// }
/// let loaded = migrate_runtime::source::read_dir(root, "../migrations")?;
/// assert_eq!(loaded.migrations.len(), 11);
/// assert_eq!(loaded.migrations[0].path(), "../migrations/001_create_users.sql");
/// # Ok::<(), migrate_runtime::source::Diagnostics>(())
/// ```
pub fn read_dir(root: &Path, dir: &str) -> Result<Loaded, Diagnostics> {
    let dir = dir.trim_end_matches('/');
    let mut loader = Loader {
        root,
        dir,
        files: Vec::new(),
        diagnostics: Vec::new(),
    };
    let candidates = loader.find_candidates();
    loader.check_unique_versions(&candidates);
    let versions: BTreeSet<i64> = candidates.iter().map(|c| c.version).collect();
    let parsed: Vec<Parsed> = candidates
        .into_iter()
        .filter_map(|candidate| loader.parse(candidate))
        .collect();
    loader.check_replaces(&parsed);
    // A version a squash replaces is still there for `requires`: the squash stands for it.
    let versions: BTreeSet<i64> = versions
        .into_iter()
        .chain(
            parsed
                .iter()
                .flat_map(|m| m.replaces.iter().map(|(v, _, _)| *v)),
        )
        .collect();
    loader.check_requires(&parsed, &versions);
    if !loader.diagnostics.is_empty() {
        return Err(Diagnostics(loader.diagnostics));
    }
    let mut migrations: Vec<Migration> = parsed.into_iter().map(Parsed::into_migration).collect();
    migrations.sort_by_key(Migration::version);
    Ok(Loaded {
        migrations,
        files: loader.files,
    })
}

/// The file of glob patterns, one per line, naming entries of the migrations directory that
/// are not migrations (a hand-run backfill script beside diesel's directories, say).
pub const IGNORE_FILE: &str = ".migrateignore";

struct Loader<'a> {
    root: &'a Path,
    dir: &'a str,
    files: Vec<PathBuf>,
    diagnostics: Vec<Diagnostic>,
}

/// One migration's files, before they are read.
struct Candidate {
    layout: Layout,
    version: i64,
    name: String,
    up: String,
    down: Option<String>,
    metadata: Option<String>,
}

/// One migration, read and checked on its own.
struct Parsed {
    version: i64,
    name: String,
    up: Section,
    down: Option<Section>,
    checksum: Checksum,
    requires: Vec<(i64, u32)>,
    environments: Vec<String>,
    allowed_lints: Vec<String>,
    lock_timeout: Option<LockTimeout>,
    phase: Phase,
    out_of_order: bool,
    replaces: Vec<(i64, String, u32)>,
    requires_sets: Vec<(String, i64)>,
}

impl Parsed {
    fn into_migration(self) -> Migration {
        Migration::owned(
            self.version,
            self.name,
            self.up,
            self.down,
            self.checksum,
            self.requires
                .into_iter()
                .map(|(version, _)| version)
                .collect(),
            self.environments,
            self.allowed_lints,
            self.lock_timeout,
            self.phase,
            self.out_of_order,
            self.replaces
                .into_iter()
                .map(|(version, checksum, _)| (version, checksum))
                .collect(),
            self.requires_sets,
        )
    }
}

impl Loader<'_> {
    fn display(&self, name: &str) -> String {
        if self.dir.is_empty() || self.dir == "." {
            name.to_owned()
        } else {
            format!("{}/{name}", self.dir)
        }
    }

    fn report<'r>(&'r mut self, path: &'r str) -> Reporter<'r> {
        Reporter::new(path, &mut self.diagnostics)
    }

    fn error(&mut self, path: &str, message: impl Into<String>, help: impl Into<String>) {
        self.report(path).error(None, message, Some(help));
    }

    /// The directory's entries, paired into migrations according to their layout.
    fn find_candidates(&mut self) -> Vec<Candidate> {
        let dir_path = self.root.join(self.dir);
        if !dir_path.is_dir() {
            let dir = if self.dir.is_empty() { "." } else { self.dir };
            self.error(
                dir,
                "the migrations directory does not exist",
                "create it, or name the directory relative to the crate root, e.g. `embed_migrations!(\"db/migrations\")`",
            );
            return Vec::new();
        }
        let ignored = self.ignore_patterns(&dir_path);
        let mut file_names: Vec<String> = Vec::new();
        let mut diesel_dirs: Vec<(String, String, String)> = Vec::new();
        for entry in WalkDir::new(&dir_path)
            .min_depth(1)
            .max_depth(1)
            .sort_by_file_name()
        {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    let dir = self.dir.to_owned();
                    self.error(
                        &dir,
                        format!("cannot list the directory: {error}"),
                        "check its permissions",
                    );
                    continue;
                }
            };
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                let shown = self.display(&entry.file_name().to_string_lossy());
                self.error(
                    &shown,
                    "the file name is not valid UTF-8",
                    "rename it using ASCII letters, digits and underscores",
                );
                continue;
            };
            if ignored.iter().any(|pattern| pattern.matches(&name)) {
                continue;
            }
            let is_dir = if entry.path_is_symlink() {
                match self.link_target_is_dir(&dir_path, entry.path(), &name) {
                    Some(is_dir) => is_dir,
                    None => continue,
                }
            } else {
                entry.file_type().is_dir()
            };
            if !is_dir {
                file_names.push(name);
            } else if let Some((version, migration_name)) = file_name::parse_diesel_dir_name(&name)
            {
                diesel_dirs.push((version.to_owned(), migration_name.to_owned(), name.clone()));
            } else if entry.path().join("up.sql").is_file() {
                // It holds a migration's SQL: skipping it would leave the schema without it.
                let shown = self.display(&name);
                self.error(
                    &shown,
                    format!("`{name}/` holds an `up.sql`, but its name is not `{{version}}_{{name}}`, so it cannot be read as a migration"),
                    format!("name it like diesel's `2024-01-01-120000_create_users` (digits and dashes, an underscore, then the name), move it out of the migrations directory, or list it in `{}` to leave it alone", self.display(IGNORE_FILE)),
                );
            }
        }
        let mut files: Vec<(&str, MigrationFile<'_>)> = Vec::new();
        for name in &file_names {
            match file_name::parse_file_name(name) {
                Ok(None) => {}
                Ok(Some(parsed)) => files.push((name, parsed)),
                Err(why) => {
                    let shown = self.display(name);
                    self.error(
                        &shown,
                        format!("`{name}` is not a valid migration file name: {why}"),
                        format!("rename the file, move it out of the migrations directory, or list it in `{}` to leave it alone", self.display(IGNORE_FILE)),
                    );
                }
            }
        }
        if !self.check_single_layout(&files, &diesel_dirs) {
            return Vec::new();
        }
        let mut candidates = self.pair_files(&files);
        for (version, name, dir_name) in diesel_dirs {
            candidates.extend(self.diesel_candidate(&version, &name, &dir_name));
        }
        candidates
    }

    /// Whether the symbolic link `path` (the entry `name` of the migrations directory) leads to
    /// a directory; links are followed like the files and directories they point to. `None`
    /// (reported) for a link to nothing, and for one to the migrations directory itself or a
    /// directory above it (a loop).
    fn link_target_is_dir(&mut self, dir_path: &Path, path: &Path, name: &str) -> Option<bool> {
        let shown = self.display(name);
        let target = fs::read_link(path)
            .map(|target| target.display().to_string())
            .unwrap_or_default();
        let ignore_help = format!(
            "or list it in `{}` to leave it alone",
            self.display(IGNORE_FILE)
        );
        let Ok(metadata) = fs::metadata(path) else {
            self.error(
                &shown,
                format!("`{name}` is a symbolic link to `{target}`, which does not exist"),
                format!("point it at an existing file, remove it, {ignore_help}"),
            );
            return None;
        };
        if !metadata.is_dir() {
            return Some(false);
        }
        let resolved = fs::canonicalize(path).ok();
        let dir = fs::canonicalize(dir_path).ok();
        if let (Some(resolved), Some(dir)) = (resolved, dir) {
            if dir.starts_with(&resolved) {
                self.error(
                    &shown,
                    format!("`{name}` is a symbolic link to `{target}`, which contains the migrations directory: a loop"),
                    format!("remove the link, {ignore_help}"),
                );
                return None;
            }
        }
        Some(true)
    }

    /// The patterns of the directory's ignore file: one glob per line (`*`, `?`, `[...]`),
    /// matched against the names of its entries; blank lines and `#` comments are skipped.
    fn ignore_patterns(&mut self, dir_path: &Path) -> Vec<glob::Pattern> {
        let path = dir_path.join(IGNORE_FILE);
        let Ok(text) = fs::read_to_string(&path) else {
            return Vec::new();
        };
        // The build watches it like a migration: editing it changes what is embedded.
        self.files.push(self.root.join(self.dir).join(IGNORE_FILE));
        let shown = self.display(IGNORE_FILE);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match glob::Pattern::new(line.trim_end_matches('/')) {
                Ok(pattern) => patterns.push(pattern),
                Err(error) => self.report(&shown).error(
                    Some(index as u32 + 1),
                    format!("`{line}` is not a glob pattern: {}", error.msg),
                    Some(
                        "use `*`, `?` and `[...]`, one pattern per line, e.g. `data_fix*.sql`"
                            .to_owned(),
                    ),
                ),
            }
        }
        patterns
    }

    fn check_single_layout(
        &mut self,
        files: &[(&str, MigrationFile<'_>)],
        diesel_dirs: &[(String, String, String)],
    ) -> bool {
        let mut examples: BTreeMap<Layout, String> = BTreeMap::new();
        for (name, file) in files {
            examples
                .entry(file.layout())
                .or_insert_with(|| (*name).to_owned());
        }
        if let Some((_, _, dir_name)) = diesel_dirs.first() {
            examples
                .entry(Layout::DieselDirectories)
                .or_insert_with(|| format!("{dir_name}/"));
        }
        if examples.len() < 2 {
            return true;
        }
        let listed: Vec<String> = examples
            .iter()
            .map(|(layout, example)| format!("{} such as `{example}`", layout.describe()))
            .collect();
        let dir = self.dir.to_owned();
        self.error(
            &dir,
            format!("the directory mixes layouts: {}", listed.join(" and ")),
            "use one layout per directory: rename the files of one layout to the other",
        );
        false
    }

    /// Pairs `001_a.sql` with `rollback-001.sql`, and `001_a.up.sql` with the `.down.sql` of
    /// the same version: golang-migrate pairs by version, so `30_add_metadata.up.sql` and
    /// `30_drop_metadata.down.sql` are one migration (named after its up file).
    fn pair_files(&mut self, files: &[(&str, MigrationFile<'_>)]) -> Vec<Candidate> {
        let mut candidates = Vec::new();
        let mut rollbacks: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        let mut downs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, file) in files {
            match file {
                MigrationFile::Rollback { version } => {
                    if let Some(version) = self.version(name, version, Layout::SingleFile) {
                        rollbacks.entry(version).or_default().push(name);
                    }
                }
                MigrationFile::Down { version, .. } => {
                    downs.entry(version).or_default().push(name);
                }
                _ => {}
            }
        }
        for (file, file_kind) in files {
            let (layout, version_text, name, down) = match file_kind {
                MigrationFile::Single { version, name } => {
                    (Layout::SingleFile, *version, *name, None)
                }
                MigrationFile::Up { version, name } => (
                    Layout::UpDownFiles,
                    *version,
                    *name,
                    downs
                        .remove(version)
                        .and_then(|names| self.one_down(version, &names)),
                ),
                _ => continue,
            };
            let Some(version) = self.version(file, version_text, layout) else {
                continue;
            };
            let down = match layout {
                Layout::SingleFile => rollbacks
                    .remove(&version)
                    .and_then(|names| self.one_rollback(version, &names)),
                _ => down,
            };
            candidates.push(Candidate {
                layout,
                version,
                name: name.to_owned(),
                up: self.display(file),
                down,
                metadata: None,
            });
        }
        for (version, names) in rollbacks {
            let shown = self.display(names[0]);
            self.error(
                &shown,
                format!("a rollback file for version {version}, but no migration has that version"),
                "rename it to match its migration (`rollback-{version}.sql`), or delete it",
            );
        }
        for (version, files) in downs {
            for file in files {
                let shown = self.display(file);
                self.error(
                    &shown,
                    format!("`{file}` has no `.up.sql` of version {version}"),
                    "every `.down.sql` needs an `.up.sql` of the same version; rename or add it",
                );
            }
        }
        candidates
    }

    fn one_down(&mut self, version: &str, names: &[&str]) -> Option<String> {
        if let [first, second, ..] = names {
            let shown = self.display(second);
            self.error(
                &shown,
                format!("version {version} has two down files: `{first}` and `{second}`"),
                "keep one of them",
            );
        }
        names.first().map(|name| self.display(name))
    }

    fn one_rollback(&mut self, version: i64, names: &[&str]) -> Option<String> {
        if let [first, second, ..] = names {
            let shown = self.display(second);
            self.error(
                &shown,
                format!("version {version} has two rollback files: `{first}` and `{second}`"),
                "keep one of them",
            );
        }
        names.first().map(|name| self.display(name))
    }

    fn diesel_candidate(
        &mut self,
        version_text: &str,
        name: &str,
        dir_name: &str,
    ) -> Option<Candidate> {
        let shown_dir = self.display(dir_name);
        let version = self.version(
            &format!("{dir_name}/"),
            version_text,
            Layout::DieselDirectories,
        )?;
        let dir_path = self.root.join(self.dir).join(dir_name);
        let has = |file: &str| dir_path.join(file).is_file();
        let (has_up, has_down, has_metadata) =
            (has("up.sql"), has("down.sql"), has("metadata.toml"));
        for entry in fs::read_dir(&dir_path).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let known = ["up.sql", "down.sql", "metadata.toml"].contains(&file.as_str());
            if !known
                && !file_name::is_ignored(&file)
                && file.to_ascii_lowercase().ends_with(".sql")
            {
                self.error(&format!("{shown_dir}/{file}"), "an unexpected SQL file in a diesel migration directory", "a diesel migration directory holds `up.sql`, `down.sql` and `metadata.toml`; move or rename this file");
            }
        }
        if !has_up {
            self.error(
                &shown_dir,
                "a diesel migration directory without `up.sql`",
                "add `up.sql` with the migration's SQL, or remove the directory",
            );
            return None;
        }
        Some(Candidate {
            layout: Layout::DieselDirectories,
            version,
            name: name.to_owned(),
            up: format!("{shown_dir}/up.sql"),
            down: has_down.then(|| format!("{shown_dir}/down.sql")),
            metadata: has_metadata.then(|| format!("{shown_dir}/metadata.toml")),
        })
    }

    fn version(&mut self, file: &str, text: &str, layout: Layout) -> Option<i64> {
        let parsed = match layout {
            Layout::DieselDirectories => file_name::diesel_version(text),
            _ => file_name::numeric_version(text),
        };
        parsed
            .map_err(|why| {
                let shown = self.display(file);
                self.error(&shown, why, "renumber the migration");
            })
            .ok()
    }

    /// Reads a file as UTF-8 text without BOM and with LF line endings.
    fn read_text(&mut self, path: &str) -> Option<String> {
        let full = self.root.join(path);
        self.files.push(full.clone());
        let bytes = match fs::read(&full) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.error(
                    path,
                    format!("cannot be read: {error}"),
                    "check that the file exists and is readable",
                );
                return None;
            }
        };
        decode(&bytes, &mut self.report(path))
    }

    fn parse(&mut self, candidate: Candidate) -> Option<Parsed> {
        let run_in_transaction = match &candidate.metadata {
            Some(path) => self.diesel_metadata(path)?,
            None => true,
        };
        let up_text = self.read_text(&candidate.up)?;
        let mut report = Reporter::new(&candidate.up, &mut self.diagnostics);
        let up_file = parse_up_text(
            &up_text,
            candidate.layout,
            run_in_transaction,
            candidate.down.as_deref(),
            &mut report,
        );
        // The down file is read even when the UP file failed, so its problems are reported too.
        let down = match &candidate.down {
            Some(down_path) => self.read_down_file(
                down_path,
                !run_in_transaction,
                candidate.layout != Layout::SingleFile,
            ),
            None => up_file.as_ref().and_then(|file| file.down.clone()),
        };
        let up_file = up_file?;
        Some(Parsed {
            version: candidate.version,
            name: candidate.name,
            checksum: up_file.checksum,
            up: up_file.up,
            down,
            requires: up_file.requires,
            environments: up_file.environments,
            allowed_lints: up_file.allowed_lints,
            lock_timeout: up_file.lock_timeout,
            phase: up_file.phase,
            out_of_order: up_file.out_of_order,
            replaces: up_file.replaces,
            requires_sets: up_file.requires_sets,
        })
    }

    /// A `.down.sql`, `down.sql` or `rollback-N.sql`: one section, whose header may only say
    /// `no-transaction`.
    fn read_down_file(
        &mut self,
        path: &str,
        no_transaction: bool,
        imported: bool,
    ) -> Option<Section> {
        let text = self.read_text(path)?;
        parse_down_text(&text, no_transaction, imported, &mut self.report(path))
    }

    /// diesel's `metadata.toml`: `run_in_transaction = false` is the one setting.
    fn diesel_metadata(&mut self, path: &str) -> Option<bool> {
        let text = self.read_text(path)?;
        let mut report = Reporter::new(path, &mut self.diagnostics);
        let table: toml::Table = match toml::from_str(&text) {
            Ok(table) => table,
            Err(error) => {
                let line = error
                    .span()
                    .map(|span| 1 + text[..span.start].matches('\n').count() as u32);
                report.error(
                    line,
                    format!("invalid TOML: {}", error.message()),
                    Some("diesel's metadata.toml holds `run_in_transaction = false`"),
                );
                return None;
            }
        };
        let mut run_in_transaction = true;
        for (key, value) in table {
            match (key.as_str(), value.as_bool()) {
                ("run_in_transaction", Some(flag)) => run_in_transaction = flag,
                ("run_in_transaction", None) => {
                    report.error(
                        None,
                        "`run_in_transaction` must be `true` or `false`",
                        None::<&str>,
                    );
                    return None;
                }
                _ => {
                    report.error(
                        None,
                        format!("unknown setting `{key}`"),
                        Some("the only setting understood is `run_in_transaction`"),
                    );
                    return None;
                }
            }
        }
        Some(run_in_transaction)
    }

    /// Two files may not share a version, whatever else is wrong with them.
    fn check_unique_versions(&mut self, candidates: &[Candidate]) {
        let mut first_with: BTreeMap<i64, &str> = BTreeMap::new();
        for candidate in candidates {
            if let Some(first) = first_with.insert(candidate.version, &candidate.up) {
                let message = format!(
                    "version {} is used by both `{first}` and `{}`",
                    candidate.version, candidate.up
                );
                self.error(&candidate.up, message, "give one of them a new version number; versions compare as integers, so `001` and `1` are the same");
            }
        }
    }

    /// `requires` names versions that exist and are lower.
    /// A squash replaces versions up to its own, and the files it replaces are gone.
    fn check_replaces(&mut self, parsed: &[Parsed]) {
        let files: BTreeMap<i64, String> = parsed
            .iter()
            .map(|m| (m.version, m.up.path().to_owned()))
            .collect();
        for migration in parsed {
            for (replaced, _, line) in &migration.replaces {
                let problem = if *replaced > migration.version {
                    Some((
                        format!(
                            "replaces version {replaced}, which is above its own version {}",
                            migration.version
                        ),
                        "a squash replaces the migrations up to and including its own version"
                            .to_owned(),
                    ))
                } else if *replaced != migration.version {
                    files.get(replaced).map(|path| {
                        (
                            format!("replaces version {replaced}, whose file `{path}` is still here"),
                            format!("delete `{path}`: the squash stands for it (a database that applied it records the squash without running it)"),
                        )
                    })
                } else {
                    None
                };
                if let Some((problem, help)) = problem {
                    let path = migration.up.path().to_owned();
                    self.report(&path).error(Some(*line), problem, Some(help));
                }
            }
        }
    }

    fn check_requires(&mut self, parsed: &[Parsed], versions: &BTreeSet<i64>) {
        let phases: BTreeMap<i64, Phase> = parsed.iter().map(|m| (m.version, m.phase)).collect();
        for migration in parsed {
            for &(required, line) in &migration.requires {
                if migration.phase == Phase::PreDeploy
                    && phases.get(&required) == Some(&Phase::PostDeploy)
                {
                    // Pre-deploy runs before the new version rolls out, post-deploy after it:
                    // while both are pending, this one would need what only comes later.
                    let path = migration.up.path().to_owned();
                    self.report(&path).error(
                        Some(line),
                        format!("this pre-deploy migration requires version {required}, which is post-deploy: it would wait for a migration that only runs after the deploy it belongs to"),
                        Some(format!("mark this migration `-- migrate:phase post-deploy` too, or, when {required} shipped in an earlier release whose post-deploy phase has run, remove {required} from `-- migrate:requires` (versions already apply in order)")),
                    );
                    continue;
                }
                let problem = if !versions.contains(&required) {
                    Some(format!("requires version {required}, which does not exist"))
                } else if required >= migration.version {
                    Some(format!(
                        "requires version {required}, which is not lower than its own version {}",
                        migration.version
                    ))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    let path = migration.up.path().to_owned();
                    self.report(&path).error(Some(line), problem, Some("a migration may only require migrations with lower versions that exist"));
                }
            }
        }
    }
}

/// A file's bytes as text without BOM and with LF line endings; `None` (reported) when they
/// are not UTF-8, or hold a NUL byte (which no PostgreSQL text can).
pub(super) fn decode(bytes: &[u8], report: &mut Reporter<'_>) -> Option<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => match text.find('\0') {
            None => Some(text.replace("\r\n", "\n")),
            Some(at) => {
                let before = &text[..at];
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let line = 1 + before.matches('\n').count() as u32;
                let column = before[line_start..].chars().count() + 1;
                report.error(
                    Some(line),
                    format!("a NUL byte (column {column}): PostgreSQL text cannot contain NUL"),
                    Some("remove it; a file full of them was saved as UTF-16 or is not text: save it as UTF-8"),
                );
                None
            }
        },
        Err(error) => {
            let valid = &bytes[..error.valid_up_to()];
            let line = 1 + valid.iter().filter(|b| **b == b'\n').count() as u32;
            report.error(
                Some(line),
                format!("the file is not valid UTF-8 (byte {})", error.valid_up_to()),
                Some("save the file as UTF-8"),
            );
            None
        }
    }
}

/// What one UP file says on its own, before the checks that span files.
pub(super) struct UpFile {
    pub(super) up: Section,
    /// The DOWN section written in the same file.
    pub(super) down: Option<Section>,
    pub(super) checksum: Checksum,
    pub(super) requires: Vec<(i64, u32)>,
    pub(super) environments: Vec<String>,
    pub(super) allowed_lints: Vec<String>,
    pub(super) lock_timeout: Option<LockTimeout>,
    pub(super) phase: Phase,
    pub(super) out_of_order: bool,
    /// `-- migrate:replaces`: version, checksum, line.
    pub(super) replaces: Vec<(i64, String, u32)>,
    /// `-- migrate:requires set:version`.
    pub(super) requires_sets: Vec<(String, i64)>,
}

/// Parses and checks the (decoded) text of an UP file; `None` when a problem was reported.
/// `down_file` names the migration's separate down file, if it has one.
pub(super) fn parse_up_text(
    text: &str,
    layout: Layout,
    run_in_transaction: bool,
    down_file: Option<&str>,
    report: &mut Reporter<'_>,
) -> Option<UpFile> {
    let markers = match layout {
        Layout::SingleFile => Markers::Allowed,
        _ => Markers::Forbidden,
    };
    let errors_before = report.count();
    let split = sections::split_file(text, markers, report)?;
    let header = Header::read(&split.directives, layout, report);
    let file_no_transaction = header.no_transaction || !run_in_transaction;
    let up_raw = split.up.expect("split_file always yields an UP section");
    let up_transactional = section_transactional(up_raw, file_no_transaction, report);
    // The layouts taken from other tools run as those tools ran them (see `infer`).
    let up_inferred = infer(up_raw, up_transactional, layout != Layout::SingleFile);
    let up_transactional = up_transactional && up_inferred.is_none();
    let path = report.path().to_owned();
    let up = sections::check_section(up_raw, up_transactional, "UP", report)
        .map(|checked| section(&path, checked, up_transactional, up_inferred));
    let down = split.down.and_then(|raw| {
        let transactional = section_transactional(raw, file_no_transaction, report);
        sections::check_section(raw, transactional, "DOWN", report)
            .map(|checked| section(&path, checked, transactional, None))
    });
    if let (Some(raw), Some(down_file)) = (split.down, down_file) {
        report.error(
            Some(raw.line - 1),
            format!("a DOWN section here and a separate down file `{down_file}`"),
            Some("keep one of them"),
        );
    }
    if report.count() > errors_before {
        return None;
    }
    Some(UpFile {
        up: up?,
        down,
        checksum: Checksum::of_up_section(up_raw.text, up_transactional),
        requires: header.requires,
        environments: header.environments,
        allowed_lints: header.allowed_lints,
        lock_timeout: header.lock_timeout,
        phase: header.phase.unwrap_or_default(),
        out_of_order: header.out_of_order,
        replaces: header.replaces,
        requires_sets: header.requires_sets,
    })
}

/// A `.down.sql`, `down.sql` or `rollback-N.sql` (decoded): one section, whose header may
/// only say `no-transaction`. `None` when a problem was reported or the file holds no
/// statement.
pub(super) fn parse_down_text(
    text: &str,
    no_transaction: bool,
    imported: bool,
    report: &mut Reporter<'_>,
) -> Option<Section> {
    let errors_before = report.count();
    let split = sections::split_file(text, Markers::Forbidden, report)?;
    let mut file_no_transaction = no_transaction;
    for directive in &split.directives {
        match directive.kind {
            DirectiveKind::NoTransaction => file_no_transaction = true,
            _ => report.error(
                Some(directive.line),
                "`requires`, `env` and `allow` belong in the migration's UP file",
                Some("move this directive to the UP file's header"),
            ),
        }
    }
    let raw = split.up?;
    // diesel's `metadata.toml` is often forgotten for the way down: infer it there too.
    let inferred = infer(raw, !file_no_transaction, imported);
    let transactional = !file_no_transaction && inferred.is_none();
    let path = report.path().to_owned();
    let checked = sections::check_section(raw, transactional, "DOWN", report)
        .map(|checked| section(&path, checked, transactional, inferred));
    // A misplaced directive is reported above but does not stop the section's checks.
    checked.filter(|_| report.count() == errors_before)
}

fn section(
    path: &str,
    checked: CheckedSection<'_>,
    transactional: bool,
    inferred: Option<String>,
) -> Section {
    Section::owned(
        path.to_owned(),
        checked.line,
        transactional,
        checked.sql.to_owned(),
        inferred,
    )
}

/// Why a section that would run in a transaction runs outside one: only in the `imported`
/// layouts, whose authors never wrote our directives, and only when the section could not run
/// in one as written. The native layout keeps its compile errors: there, explicit beats
/// inferred.
fn infer(raw: RawSection<'_>, transactional: bool, imported: bool) -> Option<String> {
    (imported && transactional)
        .then(|| sections::inferred_no_transaction(raw))
        .flatten()
}

/// Whether a section runs in a transaction: not when the file says `no-transaction` (or
/// diesel's metadata does), nor when its marker says `transaction:false`.
fn section_transactional(
    raw: RawSection<'_>,
    file_no_transaction: bool,
    report: &mut Reporter<'_>,
) -> bool {
    match raw.transaction_option {
        Some(false) => false,
        Some(true) if file_no_transaction => {
            report.error(
                Some(raw.line - 1),
                "`transaction:true` on this marker contradicts the file's `no-transaction` setting",
                Some("keep one of them"),
            );
            false
        }
        _ => !file_no_transaction,
    }
}

/// The directives at the top of an UP file, read and checked.
struct Header {
    no_transaction: bool,
    requires: Vec<(i64, u32)>,
    environments: Vec<String>,
    allowed_lints: Vec<String>,
    lock_timeout: Option<LockTimeout>,
    phase: Option<Phase>,
    out_of_order: bool,
    replaces: Vec<(i64, String, u32)>,
    requires_sets: Vec<(String, i64)>,
}

impl Header {
    fn read(directives: &[Directive<'_>], layout: Layout, report: &mut Reporter<'_>) -> Header {
        let mut header = Header {
            no_transaction: false,
            requires: Vec::new(),
            environments: Vec::new(),
            allowed_lints: Vec::new(),
            lock_timeout: None,
            phase: None,
            out_of_order: false,
            replaces: Vec::new(),
            requires_sets: Vec::new(),
        };
        for directive in directives {
            let line = Some(directive.line);
            match directive.kind {
                DirectiveKind::NoTransaction => header.no_transaction = true,
                DirectiveKind::Requires(list) => {
                    let items = list_items(list);
                    if items.is_empty() {
                        report.error(line, "`-- migrate:requires` lists no version", Some("write the versions this migration needs, e.g. `-- migrate:requires 001, 003`"));
                    }
                    for item in items {
                        if let Some((set, version)) = item.split_once(':') {
                            // Another set's migration (`queue:3`): checked when the sets run.
                            let named = !set.is_empty()
                                && set.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                                && !version.is_empty()
                                && version.bytes().all(|b| b.is_ascii_digit());
                            match file_name::numeric_version(version) {
                                Ok(version) if named => {
                                    header.requires_sets.push((set.to_ascii_lowercase(), version))
                                }
                                _ => report.error(line, format!("`{item}` is not a migration of another set"), Some("name another set's migration as `set:version`, e.g. `-- migrate:requires queue:3` (set names are letters, digits and `_`)")),
                            }
                            continue;
                        }
                        let version = match layout {
                            Layout::DieselDirectories => file_name::diesel_version(item),
                            _ if item.bytes().all(|b| b.is_ascii_digit()) => {
                                file_name::numeric_version(item)
                            }
                            _ => Err(format!("`{item}` is not a version number")),
                        };
                        match version {
                            Ok(version) => header.requires.push((version, directive.line)),
                            Err(why) => report.error(line, why, Some("list versions as they appear in file names, e.g. `-- migrate:requires 001, 003`")),
                        }
                    }
                }
                DirectiveKind::Allow(list) => {
                    let items = list_items(list);
                    if items.is_empty() {
                        report.error(
                            line,
                            "`-- migrate:allow` names no rule",
                            Some(lint_rules_help()),
                        );
                    }
                    for item in items {
                        match lint::rule(item) {
                            Some(rule) if rule.id == "drop-database" => report.error(
                                line,
                                "`drop-database` cannot be allowed",
                                Some("drop databases by hand, outside migrations"),
                            ),
                            Some(rule) => header.allowed_lints.push(rule.id.to_owned()),
                            None => report.error(
                                line,
                                format!("`{item}` is not a lint rule"),
                                Some(lint_rules_help()),
                            ),
                        }
                    }
                }
                DirectiveKind::LockTimeout(value) => {
                    let help = "write how long the migration may wait for a lock, e.g. `-- migrate:lock-timeout 30s` (units ms, s, min, h), or `-- migrate:lock-timeout off` to wait as long as it takes";
                    if header.lock_timeout.is_some() {
                        report.error(line, "a second `-- migrate:lock-timeout`", Some("keep one"));
                    } else if value.eq_ignore_ascii_case("off") {
                        header.lock_timeout = Some(LockTimeout::Off);
                    } else {
                        match parse_duration(value) {
                            Ok(limit) if !limit.is_zero() => {
                                header.lock_timeout = Some(LockTimeout::After(limit))
                            }
                            Ok(_) => report.error(
                                line,
                                "`-- migrate:lock-timeout 0` would mean no limit",
                                Some(help),
                            ),
                            Err(_) if value.is_empty() => report.error(
                                line,
                                "`-- migrate:lock-timeout` needs a value",
                                Some(help),
                            ),
                            Err(why) => report.error(line, why, Some(help)),
                        }
                    }
                }
                DirectiveKind::Phase(value) => {
                    let help = "write `-- migrate:phase post-deploy` for a migration that runs once the new version is fully rolled out (`up --phase post-deploy`), or leave the directive out for the default `pre-deploy`";
                    if header.phase.is_some() {
                        report.error(line, "a second `-- migrate:phase`", Some("keep one"));
                    } else if value.is_empty() {
                        report.error(line, "`-- migrate:phase` needs a value", Some(help));
                    } else {
                        match Phase::parse(value) {
                            Some(phase) => header.phase = Some(phase),
                            None => report.error(
                                line,
                                format!("`{value}` is not a deploy phase (`pre-deploy` or `post-deploy`)"),
                                Some(help),
                            ),
                        }
                    }
                }
                DirectiveKind::OutOfOrder(value) => {
                    if header.out_of_order {
                        report.error(line, "a second `-- migrate:out-of-order`", Some("keep one"));
                    } else if value.eq_ignore_ascii_case("ok") {
                        header.out_of_order = true;
                    } else {
                        report.error(
                            line,
                            format!("`-- migrate:out-of-order` takes `ok`, not `{value}`"),
                            Some("write `-- migrate:out-of-order ok` to let this migration be applied below newer applied ones, or remove the directive"),
                        );
                    }
                }
                DirectiveKind::Replaces(value) => {
                    let help = "`migrate squash` writes these lines: `-- migrate:replaces <version> sha256:<64 hex digits>`, one per replaced migration, with the checksum it was applied with";
                    let (version, checksum) = value
                        .split_once(char::is_whitespace)
                        .map_or((value, ""), |(v, c)| (v, c.trim()));
                    let version = match layout {
                        Layout::DieselDirectories => file_name::diesel_version(version),
                        _ if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) => {
                            file_name::numeric_version(version)
                        }
                        _ => Err(format!("`{version}` is not a version number")),
                    };
                    let hex = checksum.strip_prefix("sha256:").unwrap_or_default();
                    match version {
                        Err(why) => report.error(line, why, Some(help)),
                        Ok(_) if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                            report.error(
                                line,
                                format!("`{checksum}` is not a checksum"),
                                Some(help),
                            )
                        }
                        Ok(version) if header.replaces.iter().any(|(v, _, _)| *v == version) => {
                            report.error(
                                line,
                                format!("version {version} is replaced twice"),
                                Some("keep one line per replaced migration"),
                            )
                        }
                        Ok(version) => header.replaces.push((
                            version,
                            checksum.to_ascii_lowercase(),
                            directive.line,
                        )),
                    }
                }
                DirectiveKind::Env(list) => {
                    let items = list_items(list);
                    if items.is_empty() {
                        report.error(line, "`-- migrate:env` lists no environment", Some("write where this migration applies, e.g. `-- migrate:env production`"));
                    }
                    for item in items {
                        if item
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                        {
                            header.environments.push(item.to_ascii_lowercase());
                        } else {
                            report.error(line, format!("`{item}` is not an environment name"), Some("environment names are letters, digits, `_` and `-`, separated by commas"));
                        }
                    }
                }
            }
        }
        header
    }
}

fn lint_rules_help() -> String {
    let ids: Vec<&str> = lint::RULES
        .iter()
        .map(|rule| rule.id)
        .filter(|id| *id != "drop-database")
        .collect();
    format!("the rules that can be allowed: {}", ids.join(", "))
}

/// `001, 003` or `001 003` or `production,staging`.
fn list_items(list: &str) -> Vec<&str> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `migration_file` fuzz target: a down file whose header has a `requires`
    /// directive was reported and yet returned as a DOWN section, unlike every other parser
    /// step, which returns nothing once it has reported a problem.
    #[test]
    fn a_down_file_with_a_reported_problem_yields_no_section() {
        let mut diagnostics = Vec::new();
        let mut report = Reporter::new("1_a.down.sql", &mut diagnostics);
        let section = parse_down_text(
            "-- migrate:requires 003\nDROP TABLE t;\n",
            false,
            false,
            &mut report,
        );
        assert_eq!(section, None);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].line, Some(1));

        let mut diagnostics = Vec::new();
        let mut report = Reporter::new("1_a.down.sql", &mut diagnostics);
        let section = parse_down_text(
            "-- migrate:no-transaction\nDROP TABLE t;\n",
            false,
            false,
            &mut report,
        )
        .expect("a down file with an allowed directive");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(section.sql(), "-- migrate:no-transaction\nDROP TABLE t;\n");
        assert!(!section.is_transactional());
    }

    #[test]
    fn a_nul_byte_is_an_error_naming_its_line_and_column() {
        let mut diagnostics = Vec::new();
        let text = decode(
            b"CREATE TABLE t ();\r\nINSERT INTO t VALUES ('a\0b');\n",
            &mut Reporter::new("001_a.sql", &mut diagnostics),
        );
        assert_eq!(text, None);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].line, Some(2));
        assert_eq!(
            diagnostics[0].message,
            "a NUL byte (column 25): PostgreSQL text cannot contain NUL"
        );
        // Columns count characters, not bytes.
        let mut diagnostics = Vec::new();
        decode(
            "é\0".as_bytes(),
            &mut Reporter::new("001_a.sql", &mut diagnostics),
        );
        assert_eq!(
            (diagnostics[0].line, diagnostics[0].message.as_str()),
            (
                Some(1),
                "a NUL byte (column 2): PostgreSQL text cannot contain NUL"
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_followed_and_loops_and_dangling_links_named() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("migrations");
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(root.path().join("shared/scripts")).unwrap();
        fs::write(dir.join("001_a.sql"), "CREATE TABLE a ();\n").unwrap();
        fs::write(root.path().join("shared/b.sql"), "CREATE TABLE b ();\n").unwrap();
        // A link to a file is read as that file; a link to a directory is a directory like
        // any other (skipped, as it holds no `up.sql`).
        symlink("../shared/b.sql", dir.join("002_b.sql")).unwrap();
        symlink("../shared/scripts", dir.join("scripts")).unwrap();
        let loaded = read_dir(root.path(), "migrations").unwrap();
        let sql: Vec<&str> = loaded.migrations.iter().map(|m| m.up().sql()).collect();
        assert_eq!(sql, ["CREATE TABLE a ();\n", "CREATE TABLE b ();\n"]);

        symlink(".", dir.join("loop")).unwrap();
        symlink("nowhere.sql", dir.join("003_dangling.sql")).unwrap();
        let problems = read_dir(root.path(), "migrations").unwrap_err().0;
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|d| (d.path.as_str(), d.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "migrations/003_dangling.sql",
                    "`003_dangling.sql` is a symbolic link to `nowhere.sql`, which does not exist"
                ),
                (
                    "migrations/loop",
                    "`loop` is a symbolic link to `.`, which contains the migrations directory: a loop"
                ),
            ]
        );
        // Listed in the ignore file, they are left alone.
        fs::write(dir.join(IGNORE_FILE), "loop\n003_dangling.sql\n").unwrap();
        assert_eq!(
            read_dir(root.path(), "migrations")
                .unwrap()
                .migrations
                .len(),
            2
        );
    }
}
