//! The column types a set of migrations gives each table, as far as their DDL says, and which
//! type changes PostgreSQL makes without rewriting the table (for the `column-type-rewrite`
//! lint rule).

use std::collections::BTreeMap;

use super::lexer::{Token, TokenKind};

/// A column type, normalised: `character varying(20)` and `varchar(20)` are one type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SqlType {
    base: String,
    args: Vec<u32>,
}

impl SqlType {
    /// Reads a type from its tokens (`varchar(255)`, `timestamp with time zone`,
    /// `numeric(10, 2)`, `int[]`); `None` when there are none.
    pub(super) fn parse(tokens: &[Token<'_>]) -> Option<SqlType> {
        let mut words = Vec::new();
        let mut args = Vec::new();
        let mut depth = 0;
        for token in tokens {
            match token.kind {
                TokenKind::OpenParen => depth += 1,
                TokenKind::CloseParen => depth -= 1,
                TokenKind::Number if depth > 0 => args.push(token.text.parse().ok()?),
                TokenKind::Word if depth == 0 => words.push(token.text.to_ascii_lowercase()),
                TokenKind::QuotedIdentifier if depth == 0 => words.push(token.text.to_owned()),
                TokenKind::Other if token.text == "[" || token.text == "]" => {
                    words.push(token.text.to_owned())
                }
                TokenKind::Other if token.text == "." || token.text == "," => {}
                _ => return None,
            }
        }
        if words.is_empty() {
            return None;
        }
        let joined = words.join(" ").replace(" [ ]", "[]").replace("[ ]", "[]");
        let base = match joined.as_str() {
            "character varying" | "varchar" => "varchar",
            "character" | "char" | "bpchar" => "char",
            "timestamp with time zone" | "timestamptz" => "timestamptz",
            "timestamp without time zone" | "timestamp" => "timestamp",
            "numeric" | "decimal" => "numeric",
            "int" | "integer" | "int4" => "int4",
            "bigint" | "int8" => "int8",
            "smallint" | "int2" => "int2",
            "bit varying" | "varbit" => "varbit",
            other => other,
        };
        Some(SqlType {
            base: base.to_owned(),
            args,
        })
    }

    /// Whether changing a column from `self` to `new` rewrites the table. `utc`: the session's
    /// time zone is UTC, which makes `timestamp` and `timestamptz` the same bytes (PostgreSQL
    /// 12 and later skip the rewrite then).
    pub(super) fn change_rewrites(&self, new: &SqlType, utc: bool) -> bool {
        let (old, new_args) = (&self.args, &new.args);
        let no_rewrite = match (self.base.as_str(), new.base.as_str()) {
            _ if self == new => true,
            // Longer (or no) length limits: the stored values stay as they are.
            ("varchar", "varchar") | ("varbit", "varbit") => {
                match (old.first(), new_args.first()) {
                    (_, None) => true,
                    (Some(was), Some(now)) => now >= was,
                    (None, Some(_)) => false,
                }
            }
            ("varchar", "text") | ("text", "varchar") => new_args.is_empty(),
            // More digits before the point, the same scale.
            ("numeric", "numeric") => match (old.as_slice(), new_args.as_slice()) {
                (_, []) => true,
                ([p, s], [p2, s2]) => s2 == s && p2 >= p,
                ([p], [p2]) => p2 >= p,
                _ => false,
            },
            ("timestamp", "timestamptz") | ("timestamptz", "timestamp") => utc && old == new_args,
            _ => false,
        };
        !no_rewrite
    }
}

/// What the DDL seen so far says each column's type is, keyed by table (unqualified, folded
/// as PostgreSQL folds it) and column.
#[derive(Debug, Default)]
pub(super) struct Columns {
    types: BTreeMap<(String, String), SqlType>,
}

impl Columns {
    /// The type of `table.column`, when the DDL seen so far said it.
    pub(super) fn get(&self, table: &str, column: &str) -> Option<&SqlType> {
        self.types.get(&(table.to_owned(), column.to_owned()))
    }

    /// Learns what `CREATE TABLE` (with its column list), `ALTER TABLE ... ADD COLUMN`,
    /// `ALTER COLUMN ... TYPE` and `DROP TABLE` say about column types.
    pub(super) fn learn(&mut self, tokens: &[Token<'_>]) {
        let word = |i: usize, keyword: &str| tokens.get(i).is_some_and(|t| t.is_keyword(keyword));
        if word(0, "CREATE") {
            let Some(table_at) = tokens.iter().position(|t| t.is_keyword("TABLE")) else {
                return;
            };
            let mut i = table_at + 1;
            if word(i, "IF") {
                i += 3;
            }
            let Some((table, after)) = super::lint::name_at(tokens, i) else {
                return;
            };
            if tokens.get(after).map(|t| t.kind) == Some(TokenKind::OpenParen) {
                for element in list(&tokens[after + 1..]) {
                    self.column(&table, element);
                }
            }
        } else if word(0, "ALTER") && word(1, "TABLE") {
            let mut i = 2;
            if word(i, "IF") && word(i + 1, "EXISTS") {
                i += 2;
            }
            if word(i, "ONLY") {
                i += 1;
            }
            let Some((table, after)) = super::lint::name_at(tokens, i) else {
                return;
            };
            for action in list(&tokens[after..]) {
                let at =
                    |i: usize, keyword: &str| action.get(i).is_some_and(|t| t.is_keyword(keyword));
                if at(0, "ADD") && !at(1, "CONSTRAINT") {
                    let mut start = if at(1, "COLUMN") { 2 } else { 1 };
                    if at(start, "IF") {
                        start += 3;
                    }
                    self.column(&table, &action[start.min(action.len())..]);
                } else if at(0, "ALTER") {
                    let column_at = if at(1, "COLUMN") { 2 } else { 1 };
                    if let (Some(column), Some(new)) = (
                        action.get(column_at).and_then(identifier),
                        new_type(action, column_at),
                    ) {
                        self.types.insert((table.clone(), column), new);
                    }
                }
            }
        } else if word(0, "DROP") && word(1, "TABLE") {
            let at = if word(2, "IF") { 4 } else { 2 };
            if let Some((table, _)) = super::lint::name_at(tokens, at) {
                self.types.retain(|(t, _), _| *t != table);
            }
        }
    }

    /// One `name type [constraints]` element of a column list.
    fn column(&mut self, table: &str, element: &[Token<'_>]) {
        const CONSTRAINTS: &[&str] = &[
            "CONSTRAINT",
            "PRIMARY",
            "UNIQUE",
            "CHECK",
            "FOREIGN",
            "EXCLUDE",
            "LIKE",
        ];
        let Some(first) = element.first() else { return };
        if CONSTRAINTS.iter().any(|k| first.is_keyword(k)) {
            return;
        }
        let Some(column) = identifier(first) else {
            return;
        };
        let end = element
            .iter()
            .position(|t| {
                [
                    "NOT",
                    "NULL",
                    "DEFAULT",
                    "PRIMARY",
                    "UNIQUE",
                    "CHECK",
                    "REFERENCES",
                    "CONSTRAINT",
                    "GENERATED",
                    "COLLATE",
                ]
                .iter()
                .any(|k| t.is_keyword(k))
            })
            .unwrap_or(element.len());
        if let Some(sql_type) = element.get(1..end).and_then(SqlType::parse) {
            self.types.insert((table.to_owned(), column), sql_type);
        }
    }
}

/// The new type of an `ALTER [COLUMN] name [SET DATA] TYPE new [COLLATE ..] [USING ..]`
/// action whose column name is at `column_at`; `None` with a `USING` (an expression may rewrite
/// anything) or when there is no type.
pub(super) fn new_type(action: &[Token<'_>], column_at: usize) -> Option<SqlType> {
    let at = |i: usize, keyword: &str| action.get(i).is_some_and(|t| t.is_keyword(keyword));
    let start = match column_at + 1 {
        i if at(i, "TYPE") => i + 1,
        i if at(i, "SET") && at(i + 1, "DATA") && at(i + 2, "TYPE") => i + 3,
        _ => return None,
    };
    if action.iter().any(|t| t.is_keyword("USING")) {
        return None;
    }
    let end = action
        .iter()
        .position(|t| t.is_keyword("COLLATE"))
        .unwrap_or(action.len());
    SqlType::parse(action.get(start..end)?)
}

/// Whether a statement sets the session's time zone to UTC (`SET [LOCAL] timezone = 'UTC'`,
/// `SET TIME ZONE 'UTC'`).
pub(super) fn sets_utc(tokens: &[Token<'_>]) -> bool {
    let mut i = 1;
    if !tokens.first().is_some_and(|t| t.is_keyword("SET")) {
        return false;
    }
    if tokens
        .get(i)
        .is_some_and(|t| t.is_keyword("LOCAL") || t.is_keyword("SESSION"))
    {
        i += 1;
    }
    match tokens.get(i) {
        Some(t) if t.is_keyword("TIMEZONE") => i += 1,
        Some(t)
            if t.is_keyword("TIME") && tokens.get(i + 1).is_some_and(|t| t.is_keyword("ZONE")) =>
        {
            i += 2
        }
        _ => return false,
    }
    if tokens
        .get(i)
        .is_some_and(|t| t.is_keyword("TO") || t.text == "=")
    {
        i += 1;
    }
    tokens.get(i).is_some_and(|value| {
        let text = value.text.trim_matches('\'');
        text.eq_ignore_ascii_case("UTC") || text.eq_ignore_ascii_case("Etc/UTC")
    })
}

/// The comma-separated elements of a list, up to the parenthesis that closes it (commas
/// inside nested parentheses do not count).
fn list<'t, 'a>(tokens: &'t [Token<'a>]) -> Vec<&'t [Token<'a>]> {
    let mut depth = 0_i32;
    let mut start = 0;
    let mut elements = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token.kind {
            TokenKind::OpenParen => depth += 1,
            TokenKind::CloseParen if depth == 0 => {
                elements.push(&tokens[start..i]);
                return elements;
            }
            TokenKind::CloseParen => depth -= 1,
            _ if depth == 0 && token.text == "," => {
                elements.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    elements.push(&tokens[start..]);
    elements
}

fn identifier(token: &Token<'_>) -> Option<String> {
    super::lint::identifier(token)
}
