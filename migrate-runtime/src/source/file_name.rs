//! What a name in a migrations directory means: which layout it belongs to, its version and
//! its name, or that it is not a migration at all.

/// The three ways a directory can be laid out. One directory uses one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Layout {
    /// `001_name.sql` with `-- migrate:up`/`-- migrate:down` sections, optionally with
    /// `rollback-001.sql` files (seed 003).
    SingleFile,
    /// `001_name.up.sql` + `001_name.down.sql` (sqlx, golang-migrate).
    UpDownFiles,
    /// `2024-01-01-120000_name/up.sql` + `down.sql` + `metadata.toml` (diesel).
    DieselDirectories,
}

impl Layout {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Layout::SingleFile => "single files (`{version}_{name}.sql`)",
            Layout::UpDownFiles => "up/down pairs (`{version}_{name}.up.sql`)",
            Layout::DieselDirectories => "diesel directories (`{version}_{name}/up.sql`)",
        }
    }
}

/// A file name that is part of a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MigrationFile<'a> {
    /// `001_name.sql`
    Single { version: &'a str, name: &'a str },
    /// `001_name.up.sql`
    Up { version: &'a str, name: &'a str },
    /// `001_name.down.sql`
    Down { version: &'a str, name: &'a str },
    /// `rollback-001.sql`
    Rollback { version: &'a str },
}

impl MigrationFile<'_> {
    pub(super) fn layout(&self) -> Layout {
        match self {
            MigrationFile::Single { .. } | MigrationFile::Rollback { .. } => Layout::SingleFile,
            MigrationFile::Up { .. } | MigrationFile::Down { .. } => Layout::UpDownFiles,
        }
    }
}

/// Names that are never migrations: dotfiles and `README*` (any case).
pub(super) fn is_ignored(name: &str) -> bool {
    name.starts_with('.') || name.to_ascii_lowercase().starts_with("readme")
}

/// Reads a file name in a migrations directory. `Ok(None)`: not a `.sql` file, so not ours to
/// judge. `Err`: a `.sql` file whose name matches no layout, with a message saying why.
pub(super) fn parse_file_name(file_name: &str) -> Result<Option<MigrationFile<'_>>, String> {
    if is_ignored(file_name) || !file_name.to_ascii_lowercase().ends_with(".sql") {
        return Ok(None);
    }
    let Some(stem) = file_name.strip_suffix(".sql") else {
        return Err("the extension must be lowercase `.sql`".to_owned());
    };
    if let Some(version) = stem.strip_prefix("rollback-") {
        return if is_digits(version) {
            Ok(Some(MigrationFile::Rollback { version }))
        } else {
            Err(
                "a rollback file is named `rollback-{version}.sql`, e.g. `rollback-005.sql`"
                    .to_owned(),
            )
        };
    }
    let (stem, direction) = match (stem.strip_suffix(".up"), stem.strip_suffix(".down")) {
        (Some(stem), _) => (stem, Some(true)),
        (_, Some(stem)) => (stem, Some(false)),
        _ => (stem, None),
    };
    // Up/down pairs come from sqlx and golang-migrate, whose descriptions are free text, so
    // teams switch without renaming; the single-file layout keeps its stricter rule.
    let (version, name) = split_version_and_name(stem, direction.is_some())?;
    Ok(Some(match direction {
        Some(true) => MigrationFile::Up { version, name },
        Some(false) => MigrationFile::Down { version, name },
        None => MigrationFile::Single { version, name },
    }))
}

/// Reads a subdirectory name as a diesel migration (`2024-01-01-120000_create_users`,
/// `00000000000000_diesel_initial_setup`, `2019-11-15-182353_Add email notifications`);
/// `None` when it is not one. As in diesel, the name after the version is free text (spaces,
/// dashes, capitals), only not empty and without control characters.
pub(super) fn parse_diesel_dir_name(dir_name: &str) -> Option<(&str, &str)> {
    let (version, name) = dir_name.split_once('_')?;
    let version_ok = version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_digit() || c == '-');
    let name_ok = !name.trim().is_empty() && !name.chars().any(char::is_control);
    (version_ok && name_ok).then_some((version, name))
}

fn split_version_and_name(stem: &str, free_text: bool) -> Result<(&str, &str), String> {
    let shape = "expected `{version}_{name}.sql`: digits, an underscore, then letters, digits \
                 and underscores (e.g. `004_add_audit_logs.sql`)";
    let (version, name) = stem.split_once('_').ok_or_else(|| shape.to_owned())?;
    if !is_digits(version) {
        return Err(format!("the version `{version}` is not a number; {shape}"));
    }
    if free_text {
        return if name.trim().is_empty() || name.chars().any(char::is_control) {
            Err(format!(
                "the name must not be empty or hold control characters; {shape}"
            ))
        } else {
            Ok((version, name))
        };
    }
    if !is_name(name) {
        return Err(format!(
            "the name `{name}` may only contain ASCII letters, digits and underscores; {shape}"
        ));
    }
    Ok((version, name))
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Digits read as a BIGINT: `001`, `1` and `0001` are all version 1.
pub(crate) fn numeric_version(digits: &str) -> Result<i64, String> {
    digits.parse::<i64>().map_err(|_| {
        format!(
            "the version {digits} is too large: versions are stored as BIGINT, at most {}",
            i64::MAX
        )
    })
}

/// Diesel orders versions as strings with the dashes removed, and real histories mix 14-digit
/// (`2019-03-11-123456`) and 18-digit versions. Padding the digits on the right with zeros to
/// 18 places gives integers in that same order: a shorter string that is a prefix of a longer
/// one sorts first in both. The one case the mapping cannot tell apart (a prefix followed only
/// by zeros, e.g. `20190311123456` and `201903111234560000`) becomes a duplicate-version error.
///
/// ```
/// use migrate_runtime::source::diesel_version;
///
/// assert_eq!(diesel_version("2019-03-11-123456"), Ok(201_903_111_234_560_000));
/// assert_eq!(diesel_version("00000000000000"), Ok(0));
/// ```
pub fn diesel_version(text: &str) -> Result<i64, String> {
    const WIDTH: usize = 18;
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    if digits.is_empty() || !is_digits(&digits) {
        return Err(format!(
            "the diesel version `{text}` must be digits and dashes"
        ));
    }
    if digits.len() > WIDTH {
        return Err(format!(
            "the diesel version `{text}` has {} digits; at most {WIDTH} fit the BIGINT mapping",
            digits.len()
        ));
    }
    let padded = format!("{digits:0<WIDTH$}");
    Ok(padded.parse().expect("18 digits always fit in an i64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_files() {
        assert_eq!(
            parse_file_name("001_create_users.sql"),
            Ok(Some(MigrationFile::Single {
                version: "001",
                name: "create_users"
            }))
        );
        assert_eq!(
            parse_file_name("20241201120000_Add_Index2.sql"),
            Ok(Some(MigrationFile::Single {
                version: "20241201120000",
                name: "Add_Index2"
            }))
        );
    }

    #[test]
    fn up_down_and_rollback_files() {
        assert_eq!(
            parse_file_name("3_add-index.up.sql"),
            Ok(Some(MigrationFile::Up {
                version: "3",
                name: "add-index"
            }))
        );
        assert_eq!(
            parse_file_name("3_add-index.down.sql"),
            Ok(Some(MigrationFile::Down {
                version: "3",
                name: "add-index"
            }))
        );
        assert_eq!(
            parse_file_name("rollback-005.sql"),
            Ok(Some(MigrationFile::Rollback { version: "005" }))
        );
        // sqlx descriptions are free text in up/down pairs; single files keep the strict rule.
        assert_eq!(
            parse_file_name("20220101120000_create users.up.sql"),
            Ok(Some(MigrationFile::Up {
                version: "20220101120000",
                name: "create users"
            }))
        );
        assert!(parse_file_name("20220101120000_create users.sql").is_err());
        assert!(parse_file_name("1_ .up.sql").is_err());
    }

    #[test]
    fn ignored_names() {
        for name in [
            "README.md",
            "readme.sql",
            ".hidden.sql",
            "notes.txt",
            "schema.toml",
        ] {
            assert_eq!(parse_file_name(name), Ok(None), "{name}");
        }
    }

    #[test]
    fn bad_names_say_what_is_expected() {
        for name in [
            "create_users.sql",
            "v1_create_users.sql",
            "001-create-users.sql",
            "001_.sql",
            "001_create users.sql",
            "001_create-users.sql",
            "001_create_users.SQL",
            "rollback-x.sql",
        ] {
            let error = parse_file_name(name).expect_err(name);
            assert!(error.contains('`'), "{name}: {error}");
        }
    }

    #[test]
    fn numeric_versions() {
        assert_eq!(numeric_version("001"), Ok(1));
        assert_eq!(numeric_version("1"), Ok(1));
        assert_eq!(numeric_version("9223372036854775807"), Ok(i64::MAX));
        assert!(numeric_version("9223372036854775808")
            .unwrap_err()
            .contains("BIGINT"));
    }

    #[test]
    fn diesel_directory_names() {
        assert_eq!(
            parse_diesel_dir_name("2019-03-11-123456_create_users"),
            Some(("2019-03-11-123456", "create_users"))
        );
        assert_eq!(
            parse_diesel_dir_name("00000000000000_diesel_initial_setup"),
            Some(("00000000000000", "diesel_initial_setup"))
        );
        assert_eq!(
            parse_diesel_dir_name("2019-11-15-182353_Add email notifications to owners"),
            Some(("2019-11-15-182353", "Add email notifications to owners"))
        );
        assert_eq!(
            parse_diesel_dir_name("2020-02-01-000000_add-Index"),
            Some(("2020-02-01-000000", "add-Index"))
        );
        assert_eq!(parse_diesel_dir_name("2020-02-01-000000_ "), None);
        assert_eq!(parse_diesel_dir_name("fixtures"), None);
        assert_eq!(parse_diesel_dir_name("-1_x"), None);
    }

    #[test]
    fn diesel_versions_keep_diesels_string_order() {
        let versions = [
            "00000000000000",
            "2019-03-11-123456",
            "2019-03-11-1234561",
            "2019-03-11-123457",
            "2019-03-11-123457-0001",
            "2020-01-01-000000",
        ];
        let by_string = {
            let mut v: Vec<String> = versions.iter().map(|v| v.replace('-', "")).collect();
            v.sort();
            v
        };
        let by_integer = {
            let mut v: Vec<(i64, String)> = versions
                .iter()
                .map(|v| (diesel_version(v).unwrap(), v.replace('-', "")))
                .collect();
            v.sort();
            v.into_iter().map(|(_, s)| s).collect::<Vec<_>>()
        };
        assert_eq!(by_integer, by_string);
        assert_eq!(
            diesel_version("2019-03-11-123456"),
            Ok(201_903_111_234_560_000)
        );
        assert!(diesel_version("2019-03-11-123456-00001").is_err());
    }
}
