//! A PostgreSQL tokenizer: just enough of the server's lexical rules to find statement
//! boundaries, comments and keywords without being fooled by strings, quoted identifiers,
//! dollar-quoted bodies or nested comments.
//!
//! Assumes `standard_conforming_strings = on` (the default since PostgreSQL 9.1): a backslash
//! is an escape only inside `E'...'` strings.

/// What a token is. Only the distinctions the statement splitter needs are kept.
///
/// ```
/// use migrate_runtime::source::lexer::{Lexer, TokenKind};
///
/// let kinds: Vec<TokenKind> = Lexer::new("SELECT 'a;b';").map(|token| token.kind).collect();
/// assert_eq!(kinds, [TokenKind::Word, TokenKind::Whitespace, TokenKind::String, TokenKind::Semicolon]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces, tabs and newlines.
    Whitespace,
    /// `-- ...` up to (not including) the end of the line.
    LineComment,
    /// `/* ... */`, nesting allowed as in PostgreSQL.
    BlockComment,
    /// `'...'`, `E'...'`, `B'...'`, `X'...'`, `N'...'` or `U&'...'`.
    String,
    /// `$$...$$` or `$tag$...$tag$`.
    DollarString,
    /// `"..."` or `U&"..."`.
    QuotedIdentifier,
    /// A keyword or an unquoted identifier.
    Word,
    /// A numeric literal.
    Number,
    /// A positional parameter such as `$1`.
    Parameter,
    /// `;`
    Semicolon,
    /// `(`
    OpenParen,
    /// `)`
    CloseParen,
    /// Any other character (operators, commas, dots, ...), one per token.
    Other,
    /// A string, quoted identifier, dollar quote or block comment that never ends; the token
    /// runs to the end of the input.
    Unterminated(Unterminated),
}

/// Which construct was left open at the end of the input.
///
/// ```
/// use migrate_runtime::source::lexer::{Lexer, TokenKind, Unterminated};
///
/// let last = Lexer::new("SELECT $body$ never closed").last().unwrap();
/// assert_eq!(last.kind, TokenKind::Unterminated(Unterminated::DollarString));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unterminated {
    /// A quoted string literal.
    String,
    /// A dollar-quoted string.
    DollarString,
    /// A double-quoted identifier.
    QuotedIdentifier,
    /// A `/* */` comment.
    BlockComment,
}

impl Unterminated {
    /// How a user would name the construct in an error message.
    ///
    /// ```
    /// use migrate_runtime::source::lexer::Unterminated;
    ///
    /// assert_eq!(Unterminated::BlockComment.describe(), "/* comment");
    /// ```
    pub fn describe(self) -> &'static str {
        match self {
            Unterminated::String => "quoted string",
            Unterminated::DollarString => "dollar-quoted string",
            Unterminated::QuotedIdentifier => "quoted identifier",
            Unterminated::BlockComment => "/* comment",
        }
    }
}

/// One token: its kind, its text and where it starts (a byte offset into the input).
///
/// ```
/// use migrate_runtime::source::lexer::{Lexer, TokenKind};
///
/// let token = Lexer::new("  \"Users\"").nth(1).unwrap();
/// assert_eq!((token.kind, token.text, token.start), (TokenKind::QuotedIdentifier, "\"Users\"", 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    /// What the token is.
    pub kind: TokenKind,
    /// The token's text, exactly as in the input.
    pub text: &'a str,
    /// Byte offset of the token's first character.
    pub start: usize,
}

impl Token<'_> {
    /// Whitespace and comments: tokens that do not change what a statement means.
    ///
    /// ```
    /// use migrate_runtime::source::lexer::Lexer;
    ///
    /// let meaningful: Vec<&str> = Lexer::new("DROP /* careful */ TABLE t -- old\n")
    ///     .filter(|token| !token.is_trivia())
    ///     .map(|token| token.text)
    ///     .collect();
    /// assert_eq!(meaningful, ["DROP", "TABLE", "t"]);
    /// ```
    pub fn is_trivia(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment
        )
    }

    /// Byte offset just past the token.
    ///
    /// ```
    /// use migrate_runtime::source::lexer::Lexer;
    ///
    /// let token = Lexer::new("ALTER TABLE").next().unwrap();
    /// assert_eq!((token.start, token.end()), (0, 5));
    /// ```
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// Whether this is the given keyword (ASCII case-insensitive).
    ///
    /// ```
    /// use migrate_runtime::source::lexer::Lexer;
    ///
    /// let mut tokens = Lexer::new("vacuum 'vacuum'");
    /// assert!(tokens.next().unwrap().is_keyword("VACUUM"));
    /// tokens.next(); // the space
    /// assert!(!tokens.next().unwrap().is_keyword("VACUUM")); // a string, not a keyword
    /// ```
    pub fn is_keyword(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }
}

/// Splits SQL text into tokens. Never fails: malformed input ends in an
/// [`TokenKind::Unterminated`] token.
///
/// ```
/// use migrate_runtime::source::lexer::{Lexer, TokenKind};
///
/// // The semicolon inside the function body does not end the statement.
/// let sql = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;";
/// let semicolons = Lexer::new(sql).filter(|token| token.kind == TokenKind::Semicolon).count();
/// assert_eq!(semicolons, 1);
/// ```
#[derive(Clone, Debug)]
pub struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// Tokenize `input` from its start.
    ///
    /// ```
    /// use migrate_runtime::source::lexer::Lexer;
    ///
    /// assert_eq!(Lexer::new("SELECT 1").count(), 3);
    /// ```
    pub fn new(input: &'a str) -> Self {
        Lexer { input, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    /// Length in bytes of the token that starts at the current position.
    ///
    /// The common tokens (spaces, words, numbers, punctuation) are scanned byte by byte:
    /// the macro runs this over every byte of every migration at compile time, where Cargo
    /// builds procedural macros without optimisation, and a plain loop over bytes is many
    /// times faster there than `str::find` with a closure. All of PostgreSQL's delimiters
    /// are ASCII, so every non-ASCII byte is part of an identifier (as the server reads it)
    /// and stopping at an ASCII byte always stops on a character boundary.
    fn scan_token(&self) -> (TokenKind, usize) {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let first = match bytes[0] {
            ascii if ascii.is_ascii() => char::from(ascii),
            _ => rest
                .chars()
                .next()
                .expect("scan_token is only called before the end"),
        };
        match first {
            c if is_space(c) => (TokenKind::Whitespace, run_length(bytes, is_space_byte)),
            '-' if bytes.get(1) == Some(&b'-') => {
                (TokenKind::LineComment, run_length(bytes, |b| b != b'\n'))
            }
            '/' if bytes.get(1) == Some(&b'*') => scan_block_comment(rest),
            '\'' => scan_quoted(rest, 0, b'\'', false, TokenKind::String),
            '"' => scan_quoted(rest, 0, b'"', false, TokenKind::QuotedIdentifier),
            'e' | 'E' if bytes.get(1) == Some(&b'\'') => {
                scan_quoted(rest, 1, b'\'', true, TokenKind::String)
            }
            'b' | 'B' | 'x' | 'X' | 'n' | 'N' if bytes.get(1) == Some(&b'\'') => {
                scan_quoted(rest, 1, b'\'', false, TokenKind::String)
            }
            'u' | 'U' if bytes.get(1) == Some(&b'&') && bytes.get(2) == Some(&b'\'') => {
                scan_quoted(rest, 2, b'\'', false, TokenKind::String)
            }
            'u' | 'U' if bytes.get(1) == Some(&b'&') && bytes.get(2) == Some(&b'"') => {
                scan_quoted(rest, 2, b'"', false, TokenKind::QuotedIdentifier)
            }
            '$' => scan_dollar(rest),
            c if is_identifier_start(c) => (
                TokenKind::Word,
                run_length(bytes, is_identifier_continue_byte),
            ),
            c if c.is_ascii_digit()
                || (c == '.' && bytes.get(1).is_some_and(u8::is_ascii_digit)) =>
            {
                (TokenKind::Number, scan_number(rest))
            }
            ';' => (TokenKind::Semicolon, 1),
            '(' => (TokenKind::OpenParen, 1),
            ')' => (TokenKind::CloseParen, 1),
            c => (TokenKind::Other, c.len_utf8()),
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        if self.pos >= self.input.len() {
            return None;
        }
        let (kind, len) = self.scan_token();
        let token = Token {
            kind,
            text: &self.input[self.pos..self.pos + len],
            start: self.pos,
        };
        self.pos += len;
        Some(token)
    }
}

/// PostgreSQL's own definition; other Unicode spaces are identifier characters to the server.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

/// [`is_space`] for one byte.
fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0B' | b'\x0C')
}

/// Whether a byte continues an identifier (letters, digits, `_`, `$`): every byte of a
/// non-ASCII character does.
fn is_identifier_continue_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || !b.is_ascii()
}

/// How many bytes from the start satisfy `accept`.
fn run_length(bytes: &[u8], accept: impl Fn(u8) -> bool) -> usize {
    let mut i = 0;
    while i < bytes.len() && accept(bytes[i]) {
        i += 1;
    }
    i
}

fn is_identifier_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

/// `/* ... */` with nesting. Returns the token kind and its length.
fn scan_block_comment(rest: &str) -> (TokenKind, usize) {
    let bytes = rest.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return (TokenKind::BlockComment, i);
                }
            }
            _ => i += 1,
        }
    }
    (
        TokenKind::Unterminated(Unterminated::BlockComment),
        rest.len(),
    )
}

/// A quoted construct whose opening quote is at byte `prefix`. A doubled quote stands for
/// itself; with `backslash_escapes`, `\` escapes the next character (E'' strings).
fn scan_quoted(
    rest: &str,
    prefix: usize,
    quote: u8,
    backslash_escapes: bool,
    kind: TokenKind,
) -> (TokenKind, usize) {
    let bytes = rest.as_bytes();
    let mut i = prefix + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash_escapes && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return (kind, i + 1);
            }
        } else {
            i += 1;
        }
    }
    let what = if quote == b'"' {
        Unterminated::QuotedIdentifier
    } else {
        Unterminated::String
    };
    (TokenKind::Unterminated(what), rest.len())
}

/// `$1` parameters, `$tag$ ... $tag$` bodies, or a lone `$`.
fn scan_dollar(rest: &str) -> (TokenKind, usize) {
    let after = &rest[1..];
    if after.starts_with(|c: char| c.is_ascii_digit()) {
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        return (TokenKind::Parameter, 1 + digits);
    }
    // A tag is an identifier without `$`; an empty tag gives `$$`.
    let tag_len = if after.starts_with(|c: char| is_identifier_start(c)) {
        after
            .find(|c: char| !(is_identifier_start(c) || c.is_ascii_digit()))
            .unwrap_or(after.len())
    } else {
        0
    };
    if !after[tag_len..].starts_with('$') {
        return (TokenKind::Other, 1);
    }
    let delimiter = &rest[..tag_len + 2];
    match rest[delimiter.len()..].find(delimiter) {
        Some(body) => (TokenKind::DollarString, delimiter.len() * 2 + body),
        None => (
            TokenKind::Unterminated(Unterminated::DollarString),
            rest.len(),
        ),
    }
}

/// Digits, a decimal point, an exponent, `_` separators and `0x`/`0o`/`0b` prefixes. Precision
/// does not matter here, only that a number is never mistaken for something else.
fn scan_number(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let exponent_sign =
            (b == b'+' || b == b'-') && i > 0 && matches!(bytes[i - 1], b'e' | b'E');
        let decimal_point = b == b'.' && bytes.get(i + 1) != Some(&b'.');
        if b.is_ascii_alphanumeric() || b == b'_' || exponent_sign || decimal_point {
            i += 1;
        } else {
            break;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(TokenKind, &str)> {
        Lexer::new(sql)
            .filter(|t| t.kind != TokenKind::Whitespace)
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn tokens_cover_the_input_exactly() {
        let sql = "SELECT 'a;b', $x$ $$ $x$, \"q\"\"x\" /* c /* d */ */ -- e\n; E'\\'' 1.5e-3";
        let rebuilt: String = Lexer::new(sql).map(|t| t.text).collect();
        assert_eq!(rebuilt, sql);
    }

    #[test]
    fn semicolon_and_keywords_inside_strings_are_not_tokens() {
        assert_eq!(
            kinds("SELECT 'BEGIN; COMMIT; CONCURRENTLY'"),
            vec![
                (TokenKind::Word, "SELECT"),
                (TokenKind::String, "'BEGIN; COMMIT; CONCURRENTLY'")
            ]
        );
    }

    #[test]
    fn doubled_quote_continues_a_string() {
        assert_eq!(
            kinds("'it''s; fine' x"),
            vec![(TokenKind::String, "'it''s; fine'"), (TokenKind::Word, "x")]
        );
    }

    #[test]
    fn backslash_escapes_only_in_e_strings() {
        // In a standard string the backslash is a plain character, so the string ends at the
        // second quote.
        assert_eq!(
            kinds(r"'a\' ; 'b'"),
            vec![
                (TokenKind::String, r"'a\'"),
                (TokenKind::Semicolon, ";"),
                (TokenKind::String, "'b'")
            ]
        );
        assert_eq!(
            kinds(r"E'a\'; b' ;"),
            vec![
                (TokenKind::String, r"E'a\'; b'"),
                (TokenKind::Semicolon, ";")
            ]
        );
        assert_eq!(kinds(r"e'\\' x")[0], (TokenKind::String, r"e'\\'"));
    }

    #[test]
    fn prefixed_strings_and_identifiers() {
        assert_eq!(kinds("B'1010'")[0], (TokenKind::String, "B'1010'"));
        assert_eq!(kinds("X'ff'")[0], (TokenKind::String, "X'ff'"));
        assert_eq!(kinds("N'x'")[0], (TokenKind::String, "N'x'"));
        assert_eq!(
            kinds("U&'d\\0061t'")[0],
            (TokenKind::String, "U&'d\\0061t'")
        );
        assert_eq!(
            kinds("U&\"a;b\"")[0],
            (TokenKind::QuotedIdentifier, "U&\"a;b\"")
        );
        // An identifier that merely ends in e is not an E'' prefix.
        assert_eq!(
            kinds("name'x'"),
            vec![(TokenKind::Word, "name"), (TokenKind::String, "'x'")]
        );
    }

    #[test]
    fn quoted_identifiers_hide_keywords_and_semicolons() {
        assert_eq!(
            kinds("\"BEGIN;\"\"x\""),
            vec![(TokenKind::QuotedIdentifier, "\"BEGIN;\"\"x\"")]
        );
    }

    #[test]
    fn dollar_quotes_with_and_without_tags() {
        assert_eq!(
            kinds("$$ BEGIN; END; $$"),
            vec![(TokenKind::DollarString, "$$ BEGIN; END; $$")]
        );
        // A tagged body may contain `$$` and other tags.
        assert_eq!(
            kinds("$fn$ a $$ b $x$ c $fn$;"),
            vec![
                (TokenKind::DollarString, "$fn$ a $$ b $x$ c $fn$"),
                (TokenKind::Semicolon, ";")
            ]
        );
        // Tags are case-sensitive, as in PostgreSQL.
        assert_eq!(
            kinds("$A$ $a$ $A$")[0],
            (TokenKind::DollarString, "$A$ $a$ $A$")
        );
    }

    #[test]
    fn dollar_signs_that_are_not_quotes() {
        assert_eq!(
            kinds("$1 + $23"),
            vec![
                (TokenKind::Parameter, "$1"),
                (TokenKind::Other, "+"),
                (TokenKind::Parameter, "$23")
            ]
        );
        // `$` continues an identifier, so this is one word, not a dollar quote.
        assert_eq!(
            kinds("a$b$ c"),
            vec![(TokenKind::Word, "a$b$"), (TokenKind::Word, "c")]
        );
        assert_eq!(
            kinds("$ x"),
            vec![(TokenKind::Other, "$"), (TokenKind::Word, "x")]
        );
    }

    #[test]
    fn nested_block_comments() {
        assert_eq!(
            kinds("/* a /* b; */ still comment; */ x"),
            vec![
                (TokenKind::BlockComment, "/* a /* b; */ still comment; */"),
                (TokenKind::Word, "x")
            ]
        );
    }

    #[test]
    fn line_comments_end_at_newline() {
        assert_eq!(
            kinds("-- BEGIN; 'x\nCOMMIT"),
            vec![
                (TokenKind::LineComment, "-- BEGIN; 'x"),
                (TokenKind::Word, "COMMIT")
            ]
        );
        // `--` starts a comment even right after an operator character.
        assert_eq!(
            kinds("1 +-- c\n2"),
            vec![
                (TokenKind::Number, "1"),
                (TokenKind::Other, "+"),
                (TokenKind::LineComment, "-- c"),
                (TokenKind::Number, "2")
            ]
        );
    }

    #[test]
    fn unterminated_constructs_are_reported() {
        for (sql, what) in [
            ("'abc", Unterminated::String),
            ("E'abc\\'", Unterminated::String),
            ("\"abc", Unterminated::QuotedIdentifier),
            ("$a$ body $b$", Unterminated::DollarString),
            ("/* a /* b */", Unterminated::BlockComment),
        ] {
            let tokens = kinds(sql);
            assert_eq!(
                tokens.last().unwrap().0,
                TokenKind::Unterminated(what),
                "{sql}"
            );
        }
    }

    #[test]
    fn numbers_and_words() {
        assert_eq!(
            kinds("1.5e-3 .5 0x1F 1_000 abc_1$ é"),
            vec![
                (TokenKind::Number, "1.5e-3"),
                (TokenKind::Number, ".5"),
                (TokenKind::Number, "0x1F"),
                (TokenKind::Number, "1_000"),
                (TokenKind::Word, "abc_1$"),
                (TokenKind::Word, "é")
            ]
        );
    }

    #[test]
    fn keyword_match_is_case_insensitive() {
        let token = Lexer::new("ConCurrently").next().unwrap();
        assert!(token.is_keyword("CONCURRENTLY"));
        assert!(!token.is_keyword("CONCURRENT"));
    }
}
