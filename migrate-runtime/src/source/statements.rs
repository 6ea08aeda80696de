//! Splitting SQL into top-level statements and recognising the statements that matter to a
//! migration runner: transaction control, and commands PostgreSQL refuses inside a
//! transaction block.

use super::lexer::{Lexer, Token, TokenKind, Unterminated};

/// One top-level statement.
///
/// ```
/// use migrate_runtime::source::statements::split;
///
/// let sql = "-- two tables\nCREATE TABLE a (x int);\nCREATE TABLE b (y int)";
/// let statement = split(sql).next().unwrap();
/// assert_eq!(statement.text, "CREATE TABLE a (x int);");
/// assert_eq!(&sql[statement.start..statement.end()], statement.text);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statement<'a> {
    /// From the statement's first significant token through its terminating `;` (when it has
    /// one). Leading whitespace and comments belong to no statement.
    pub text: &'a str,
    /// Byte offset of `text` in the input.
    pub start: usize,
}

impl Statement<'_> {
    /// Byte offset just past the statement.
    ///
    /// ```
    /// use migrate_runtime::source::statements::split;
    ///
    /// let last = split("SELECT 1; SELECT 2;").last().unwrap();
    /// assert_eq!((last.start, last.end()), (10, 19));
    /// ```
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

/// Splits SQL into statements the way `psql` does: at `;` outside parentheses and outside
/// the `BEGIN ... END` body of a `CREATE FUNCTION`/`CREATE PROCEDURE` written in SQL-standard
/// syntax. Empty statements (`;;`) are skipped. Allocates nothing.
///
/// ```
/// use migrate_runtime::source::statements::split;
///
/// let sql = "CREATE INDEX CONCURRENTLY i ON t (a);; SELECT ';'";
/// let texts: Vec<&str> = split(sql).map(|statement| statement.text).collect();
/// assert_eq!(texts, ["CREATE INDEX CONCURRENTLY i ON t (a);", "SELECT ';'"]);
/// ```
pub fn split(sql: &str) -> Statements<'_> {
    Statements {
        sql,
        lexer: Lexer::new(sql),
    }
}

/// Iterator returned by [`split`].
///
/// ```
/// use migrate_runtime::source::statements::{split, Statements};
///
/// let statements: Statements<'_> = split("SELECT 1; SELECT 2;");
/// assert_eq!(statements.count(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct Statements<'a> {
    sql: &'a str,
    lexer: Lexer<'a>,
}

impl<'a> Iterator for Statements<'a> {
    type Item = Statement<'a>;

    fn next(&mut self) -> Option<Statement<'a>> {
        let mut start = None;
        let mut end = 0;
        let mut depth = Nesting::default();
        for token in self.lexer.by_ref() {
            if token.is_trivia() {
                continue;
            }
            start.get_or_insert(token.start);
            end = token.end();
            if token.kind == TokenKind::Semicolon && depth.is_top_level() {
                if start == Some(token.start) {
                    // An empty statement.
                    start = None;
                    continue;
                }
                break;
            }
            depth.observe(&token);
        }
        let start = start?;
        Some(Statement {
            text: &self.sql[start..end],
            start,
        })
    }
}

/// What keeps a `;` from ending a statement: parentheses, and the body of a routine written
/// with `BEGIN ATOMIC ... END` (where `CASE ... END` nests too).
#[derive(Default)]
struct Nesting {
    parens: usize,
    begin_blocks: usize,
    /// The statement's first words, lowercased, to recognise `CREATE [OR REPLACE] FUNCTION`.
    leading_words: [Option<LeadingWord>; 4],
    words_seen: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LeadingWord {
    Create,
    Or,
    Replace,
    Routine,
    Other,
}

impl Nesting {
    fn is_top_level(&self) -> bool {
        self.parens == 0 && self.begin_blocks == 0
    }

    fn observe(&mut self, token: &Token<'_>) {
        match token.kind {
            TokenKind::OpenParen => self.parens += 1,
            TokenKind::CloseParen => self.parens = self.parens.saturating_sub(1),
            TokenKind::Word => self.observe_word(token),
            _ => {}
        }
    }

    fn observe_word(&mut self, token: &Token<'_>) {
        if self.words_seen < self.leading_words.len() {
            let word = if token.is_keyword("create") {
                LeadingWord::Create
            } else if token.is_keyword("or") {
                LeadingWord::Or
            } else if token.is_keyword("replace") {
                LeadingWord::Replace
            } else if token.is_keyword("function") || token.is_keyword("procedure") {
                LeadingWord::Routine
            } else {
                LeadingWord::Other
            };
            self.leading_words[self.words_seen] = Some(word);
            self.words_seen += 1;
        }
        if token.is_keyword("begin") || token.is_keyword("case") {
            if self.in_routine_definition() {
                self.begin_blocks += 1;
            }
        } else if token.is_keyword("end") {
            self.begin_blocks = self.begin_blocks.saturating_sub(1);
        }
    }

    fn in_routine_definition(&self) -> bool {
        use LeadingWord::*;
        matches!(
            self.leading_words,
            [Some(Create), Some(Routine), ..]
                | [Some(Create), Some(Or), Some(Replace), Some(Routine)]
        )
    }
}

/// The first unterminated string, identifier, dollar quote or comment in `sql`, with its
/// byte offset.
///
/// ```
/// use migrate_runtime::source::lexer::Unterminated;
/// use migrate_runtime::source::statements::find_unterminated;
///
/// assert_eq!(find_unterminated("SELECT 'ok'; SELECT 'oops"), Some((Unterminated::String, 20)));
/// assert_eq!(find_unterminated("SELECT 1"), None);
/// ```
pub fn find_unterminated(sql: &str) -> Option<(Unterminated, usize)> {
    Lexer::new(sql).find_map(|token| match token.kind {
        TokenKind::Unterminated(what) => Some((what, token.start)),
        _ => None,
    })
}

/// What a statement means to the runner.
///
/// ```
/// use migrate_runtime::source::statements::{classify, StatementKind};
///
/// assert_eq!(classify("BEGIN ISOLATION LEVEL SERIALIZABLE;"), StatementKind::Begin { plain: false });
/// assert_eq!(classify("ROLLBACK TO SAVEPOINT s"), StatementKind::Other);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementKind {
    /// `BEGIN` or `START TRANSACTION`; `plain` when it sets no transaction modes.
    Begin {
        /// No isolation level, access mode or deferrable setting.
        plain: bool,
    },
    /// `COMMIT` or `END`; `plain` unless `AND CHAIN`.
    Commit {
        /// Not `AND CHAIN`.
        plain: bool,
    },
    /// `ROLLBACK` or `ABORT` (but not `ROLLBACK TO SAVEPOINT`, which is harmless).
    Rollback,
    /// `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
    TwoPhase,
    /// A command PostgreSQL refuses to run inside a transaction block; the text names it.
    RefusedInTransaction(&'static str),
    /// Anything else.
    Other,
}

impl StatementKind {
    /// Whether the statement starts, ends or otherwise controls a transaction.
    ///
    /// ```
    /// use migrate_runtime::source::statements::classify;
    ///
    /// assert!(classify("COMMIT AND CHAIN").is_transaction_control());
    /// assert!(!classify("VACUUM").is_transaction_control());
    /// ```
    pub fn is_transaction_control(self) -> bool {
        matches!(
            self,
            StatementKind::Begin { .. }
                | StatementKind::Commit { .. }
                | StatementKind::Rollback
                | StatementKind::TwoPhase
        )
    }
}

/// Classifies one statement (as produced by [`split`]).
///
/// ```
/// use migrate_runtime::source::statements::{classify, StatementKind};
///
/// match classify("create index concurrently i on t (a)") {
///     StatementKind::RefusedInTransaction(what) => assert_eq!(what, "CREATE INDEX CONCURRENTLY"),
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn classify(statement: &str) -> StatementKind {
    let mut significant =
        Lexer::new(statement).filter(|t| !t.is_trivia() && t.kind != TokenKind::Semicolon);
    // Most statements (INSERT, CREATE TABLE, ...) are told apart by their first word alone;
    // only the rest are read whole, so a data migration's rows are not lexed a second time.
    let Some(first) = significant.next() else {
        return StatementKind::Other;
    };
    if !FIRST_WORDS.iter().any(|word| first.is_keyword(word)) {
        return StatementKind::Other;
    }
    let tokens: Vec<Token<'_>> = std::iter::once(first).chain(significant).collect();
    let words = Words(&tokens);
    match () {
        _ if words.starts_with(&["begin"]) => StatementKind::Begin {
            plain: words.rest_is_one_of(1, &["work", "transaction"]),
        },
        _ if words.starts_with(&["start", "transaction"]) => StatementKind::Begin {
            plain: tokens.len() == 2,
        },
        _ if words.starts_with(&["commit", "prepared"])
            || words.starts_with(&["rollback", "prepared"])
            || words.starts_with(&["prepare", "transaction"]) =>
        {
            StatementKind::TwoPhase
        }
        _ if words.starts_with(&["commit"]) || words.starts_with(&["end"]) => {
            StatementKind::Commit {
                plain: !words.contains("chain"),
            }
        }
        _ if words.starts_with(&["rollback"]) || words.starts_with(&["abort"]) => {
            if words.contains("to") {
                StatementKind::Other
            } else {
                StatementKind::Rollback
            }
        }
        _ => refused_in_transaction(&words)
            .map_or(StatementKind::Other, StatementKind::RefusedInTransaction),
    }
}

/// The first words of every statement [`classify`] tells apart from [`StatementKind::Other`].
const FIRST_WORDS: [&str; 14] = [
    "begin", "start", "commit", "end", "rollback", "abort", "prepare", "create", "drop", "reindex",
    "vacuum", "alter", "cluster", "discard",
];

/// The commands for which PostgreSQL 15 calls `PreventInTransactionBlock`.
fn refused_in_transaction(words: &Words<'_>) -> Option<&'static str> {
    let create_index = words.starts_with(&["create", "index", "concurrently"])
        || words.starts_with(&["create", "unique", "index", "concurrently"]);
    let rules: [(bool, &'static str); 13] = [
        (create_index, "CREATE INDEX CONCURRENTLY"),
        (
            words.starts_with(&["drop", "index", "concurrently"]),
            "DROP INDEX CONCURRENTLY",
        ),
        (
            words.starts_with(&["reindex"]) && words.reindex_many(),
            "REINDEX SCHEMA/DATABASE/SYSTEM",
        ),
        (
            words.starts_with(&["reindex"]) && words.contains("concurrently"),
            "REINDEX CONCURRENTLY",
        ),
        (words.starts_with(&["vacuum"]), "VACUUM"),
        (
            words.starts_with(&["create", "database"]),
            "CREATE DATABASE",
        ),
        (words.starts_with(&["drop", "database"]), "DROP DATABASE"),
        (
            words.starts_with(&["alter", "database"])
                && words.contains_sequence("set", "tablespace"),
            "ALTER DATABASE ... SET TABLESPACE",
        ),
        (
            words.starts_with(&["create", "tablespace"]),
            "CREATE TABLESPACE",
        ),
        (
            words.starts_with(&["drop", "tablespace"]),
            "DROP TABLESPACE",
        ),
        (words.starts_with(&["alter", "system"]), "ALTER SYSTEM"),
        (
            words.starts_with(&["cluster"]) && words.cluster_without_table(),
            "CLUSTER without a table name",
        ),
        (
            words.starts_with(&["alter", "table"])
                && words.contains("detach")
                && words.contains("concurrently"),
            "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY",
        ),
    ];
    rules
        .into_iter()
        .find_map(|(matched, name)| matched.then_some(name))
        .or_else(|| {
            words
                .starts_with(&["discard", "all"])
                .then_some("DISCARD ALL")
        })
}

/// The significant tokens of one statement, with keyword helpers.
struct Words<'t>(&'t [Token<'t>]);

impl Words<'_> {
    fn starts_with(&self, keywords: &[&str]) -> bool {
        keywords.len() <= self.0.len()
            && keywords
                .iter()
                .zip(self.0)
                .all(|(keyword, token)| token.is_keyword(keyword))
    }

    /// Everything after the first `skip` tokens is a single word from `allowed`, or nothing.
    fn rest_is_one_of(&self, skip: usize, allowed: &[&str]) -> bool {
        match &self.0[skip..] {
            [] => true,
            [only] => allowed.iter().any(|w| only.is_keyword(w)),
            _ => false,
        }
    }

    fn contains(&self, keyword: &str) -> bool {
        self.0.iter().any(|t| t.is_keyword(keyword))
    }

    fn contains_sequence(&self, first: &str, second: &str) -> bool {
        self.0
            .windows(2)
            .any(|pair| pair[0].is_keyword(first) && pair[1].is_keyword(second))
    }

    /// The tokens after the leading keyword, skipping one parenthesised option list.
    fn after_options(&self) -> &[Token<'_>] {
        let rest = &self.0[1..];
        if rest.first().map(|t| t.kind) != Some(TokenKind::OpenParen) {
            return rest;
        }
        match rest.iter().position(|t| t.kind == TokenKind::CloseParen) {
            Some(close) => &rest[close + 1..],
            None => &[],
        }
    }

    /// `REINDEX [(options)] SCHEMA | DATABASE | SYSTEM ...`
    fn reindex_many(&self) -> bool {
        self.after_options().first().is_some_and(|t| {
            t.is_keyword("schema") || t.is_keyword("database") || t.is_keyword("system")
        })
    }

    /// `CLUSTER`, `CLUSTER VERBOSE` or `CLUSTER (options)`: re-clusters every table.
    fn cluster_without_table(&self) -> bool {
        match self.after_options() {
            [] => true,
            [only] => only.is_keyword("verbose"),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql).map(|s| s.text).collect()
    }

    #[test]
    fn splits_at_top_level_semicolons() {
        assert_eq!(
            texts("CREATE TABLE a (x int);\n-- note\nINSERT INTO a VALUES (1);  "),
            vec!["CREATE TABLE a (x int);", "INSERT INTO a VALUES (1);"]
        );
    }

    #[test]
    fn last_statement_may_lack_a_semicolon() {
        assert_eq!(
            texts("SELECT 1; SELECT 2 -- done\n"),
            vec!["SELECT 1;", "SELECT 2"]
        );
    }

    #[test]
    fn empty_statements_and_comment_only_input() {
        assert_eq!(texts(";; SELECT 1;;"), vec!["SELECT 1;"]);
        assert!(texts("-- nothing\n/* here */\n").is_empty());
    }

    #[test]
    fn semicolons_in_strings_comments_and_bodies_do_not_split() {
        let sql = "INSERT INTO t VALUES ('a;b', E'c\\';d', \"e;f\");\n\
                   /* g; /* h; */ i; */\n\
                   CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $$; $body$ LANGUAGE sql;";
        let statements = texts(sql);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[1].starts_with("CREATE FUNCTION"));
    }

    #[test]
    fn parentheses_keep_rule_actions_together() {
        let sql = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 1;";
        assert_eq!(texts(sql).len(), 2);
    }

    #[test]
    fn sql_standard_routine_bodies_stay_whole() {
        let sql = "CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql\n\
                   BEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT x;\nEND;\n\
                   CREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END;\n\
                   SELECT 2;";
        let statements = texts(sql);
        assert_eq!(statements.len(), 3, "{statements:?}");
        assert!(statements[0].ends_with("END;"));
        assert!(statements[1].starts_with("CREATE PROCEDURE"));
    }

    #[test]
    fn begin_outside_a_routine_does_not_nest() {
        assert_eq!(texts("BEGIN; SELECT 1; COMMIT;").len(), 3);
    }

    #[test]
    fn statement_offsets_point_into_the_input() {
        let sql = "  SELECT 1;\nSELECT 2;";
        let offsets: Vec<usize> = split(sql).map(|s| s.start).collect();
        assert_eq!(offsets, vec![2, 12]);
    }

    #[test]
    fn transaction_control() {
        assert_eq!(classify("BEGIN;"), StatementKind::Begin { plain: true });
        assert_eq!(
            classify("begin work;"),
            StatementKind::Begin { plain: true }
        );
        assert_eq!(
            classify("BEGIN TRANSACTION"),
            StatementKind::Begin { plain: true }
        );
        assert_eq!(
            classify("START TRANSACTION;"),
            StatementKind::Begin { plain: true }
        );
        assert_eq!(
            classify("BEGIN ISOLATION LEVEL SERIALIZABLE;"),
            StatementKind::Begin { plain: false }
        );
        assert_eq!(
            classify("START TRANSACTION READ ONLY;"),
            StatementKind::Begin { plain: false }
        );
        assert_eq!(classify("COMMIT;"), StatementKind::Commit { plain: true });
        assert_eq!(
            classify("END TRANSACTION;"),
            StatementKind::Commit { plain: true }
        );
        assert_eq!(
            classify("COMMIT AND CHAIN;"),
            StatementKind::Commit { plain: false }
        );
        assert_eq!(classify("ROLLBACK;"), StatementKind::Rollback);
        assert_eq!(classify("abort;"), StatementKind::Rollback);
        assert_eq!(classify("ROLLBACK TO SAVEPOINT s;"), StatementKind::Other);
        assert_eq!(classify("SAVEPOINT s;"), StatementKind::Other);
        assert_eq!(classify("COMMIT PREPARED 'x';"), StatementKind::TwoPhase);
        assert_eq!(
            classify("PREPARE TRANSACTION 'x';"),
            StatementKind::TwoPhase
        );
        assert_eq!(classify("PREPARE q AS SELECT 1;"), StatementKind::Other);
    }

    #[test]
    fn commands_refused_in_a_transaction_block() {
        let refused = [
            (
                "CREATE INDEX CONCURRENTLY i ON t (x);",
                "CREATE INDEX CONCURRENTLY",
            ),
            (
                "create unique index concurrently if not exists i on t (x);",
                "CREATE INDEX CONCURRENTLY",
            ),
            (
                "DROP INDEX CONCURRENTLY IF EXISTS i;",
                "DROP INDEX CONCURRENTLY",
            ),
            ("REINDEX INDEX CONCURRENTLY i;", "REINDEX CONCURRENTLY"),
            (
                "REINDEX (VERBOSE, CONCURRENTLY) TABLE t;",
                "REINDEX CONCURRENTLY",
            ),
            (
                "REINDEX (VERBOSE) DATABASE d;",
                "REINDEX SCHEMA/DATABASE/SYSTEM",
            ),
            ("REINDEX SCHEMA s;", "REINDEX SCHEMA/DATABASE/SYSTEM"),
            ("VACUUM (ANALYZE) t;", "VACUUM"),
            ("discard all;", "DISCARD ALL"),
            ("CLUSTER;", "CLUSTER without a table name"),
            ("CREATE DATABASE d;", "CREATE DATABASE"),
            ("DROP DATABASE IF EXISTS d;", "DROP DATABASE"),
            (
                "ALTER DATABASE d SET TABLESPACE s;",
                "ALTER DATABASE ... SET TABLESPACE",
            ),
            ("CREATE TABLESPACE s LOCATION '/x';", "CREATE TABLESPACE"),
            ("DROP TABLESPACE s;", "DROP TABLESPACE"),
            ("ALTER SYSTEM SET work_mem = '64MB';", "ALTER SYSTEM"),
            ("CLUSTER;", "CLUSTER without a table name"),
            ("CLUSTER VERBOSE;", "CLUSTER without a table name"),
            ("DISCARD ALL;", "DISCARD ALL"),
            (
                "ALTER TABLE p DETACH PARTITION c CONCURRENTLY;",
                "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY",
            ),
        ];
        for (sql, name) in refused {
            assert_eq!(
                classify(sql),
                StatementKind::RefusedInTransaction(name),
                "{sql}"
            );
        }
    }

    #[test]
    fn similar_commands_that_are_fine_in_a_transaction() {
        for sql in [
            "CREATE INDEX i ON t (x);",
            "CREATE INDEX \"concurrently\" ON t (x);",
            "REINDEX TABLE t;",
            "ANALYZE t;",
            "CLUSTER t USING i;",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY v;",
            "ALTER DATABASE d SET work_mem = '1MB';",
            "ALTER TABLE p DETACH PARTITION c;",
            "DISCARD PLANS;",
            "COMMENT ON TABLE t IS 'CREATE INDEX CONCURRENTLY; VACUUM';",
            "DO $$ BEGIN PERFORM 1; COMMIT; END $$;",
            "SELECT 'BEGIN';",
        ] {
            assert_eq!(classify(sql), StatementKind::Other, "{sql}");
        }
    }

    /// Random mixtures of the constructs the lexer must respect, plus arbitrary text: the
    /// tokens always reassemble the input, statements are ordered slices of it, and nothing
    /// panics. (Coverage-guided fuzzing comes on top of this; this runs in every `cargo test`.)
    #[test]
    fn random_inputs_never_break_the_invariants() {
        for input in crate::source::random_sql::inputs(20_000) {
            let rebuilt: String = Lexer::new(&input).map(|t| t.text).collect();
            assert_eq!(rebuilt, input);
            let mut previous_end = 0;
            for statement in split(&input) {
                assert!(statement.start >= previous_end, "{input:?}");
                assert_eq!(&input[statement.start..statement.end()], statement.text);
                assert!(!statement.text.is_empty());
                previous_end = statement.end();
                let _ = classify(statement.text);
            }
            let _ = find_unterminated(&input);
        }
    }
}
