//! Checks on the loaded migrations beyond the file format: lint findings as errors (when the
//! application asks with `lint`) and, with the `sql-syntax` feature, PostgreSQL's own parser.

use migrate_runtime::source::{lint, Loaded};

use crate::args::Args;

/// Every problem becomes an error at the macro's directory argument; all of them are
/// reported together.
pub(crate) fn validate(args: &Args, loaded: Loaded) -> syn::Result<Loaded> {
    let mut problems: Vec<String> = Vec::new();
    #[cfg(feature = "sql-syntax")]
    problems.extend(loaded.migrations.iter().flat_map(syntax::check));
    if args.lint {
        problems.extend(
            lint::lint_set(&loaded.migrations)
                .into_iter()
                .filter(|finding| !finding.allowed)
                .map(|finding| finding.to_string()),
        );
    }
    let errors = problems
        .into_iter()
        .map(|problem| syn::Error::new(args.span, problem))
        .reduce(|mut all, next| {
            all.combine(next);
            all
        });
    match errors {
        Some(errors) => Err(errors),
        None => Ok(loaded),
    }
}

#[cfg(feature = "sql-syntax")]
mod syntax {
    //! Each UP and DOWN statement through libpg_query (the `pg_query` crate), one statement
    //! at a time so an error can name its line.

    use migrate_runtime::source::lexer::Lexer;
    use migrate_runtime::source::statements;
    use migrate_runtime::{Migration, Section};

    pub(super) fn check(migration: &Migration) -> Vec<String> {
        std::iter::once(migration.up())
            .chain(migration.down())
            .flat_map(check_section)
            .collect()
    }

    fn check_section(section: &Section) -> Vec<String> {
        let sql = section.sql();
        statements::split(sql)
            .filter_map(|statement| {
                let pg_query::Error::Parse(message) = pg_query::parse(statement.text).err()?
                else {
                    return None;
                };
                let at = offending_offset(statement.text, &message);
                let chars = sql[..statement.start + at].chars().count();
                let (line, column) = section.file_position(chars + 1);
                Some(format!(
                    "{}:{line}:{column}: {message}\n         help: PostgreSQL's parser rejects this statement (checked at compile time by the `sql-syntax` feature)",
                    section.path()
                ))
            })
            .collect()
    }

    /// Where in the statement the parser stopped: the token its message quotes
    /// (`at or near "TABL"`), the end for `at end of input`, else the statement's start.
    fn offending_offset(statement: &str, message: &str) -> usize {
        if message.ends_with("at end of input") {
            return statement.trim_end().trim_end_matches(';').trim_end().len();
        }
        let Some(near) = message
            .split_once("at or near \"")
            .and_then(|(_, rest)| rest.strip_suffix('"'))
        else {
            return 0;
        };
        // The quoted token may occur more than once: it is the first one at which the
        // statement cut just after it already fails with the same message.
        Lexer::new(statement)
            .filter(|token| token.text.eq_ignore_ascii_case(near))
            .find(|token| {
                matches!(pg_query::parse(&statement[..token.end()]),
                         Err(pg_query::Error::Parse(m)) if m == message)
            })
            .map_or(0, |token| token.start)
    }
}
