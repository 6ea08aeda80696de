//! Test inputs: random mixtures of the SQL constructs the lexer must respect, plus
//! arbitrary text. Deterministic, so a failure reproduces.

const FRAGMENTS: &[&str] = &[
    "SELECT 1",
    ";",
    " ",
    "\n",
    "'",
    "''",
    "'a;b'",
    "E'\\'",
    "E'",
    "\\",
    "\"",
    "\"x\"",
    "$$",
    "$a$",
    "$1",
    "$",
    "--",
    "-- c\n",
    "/*",
    "*/",
    "/* x */",
    "(",
    ")",
    "BEGIN",
    "ATOMIC",
    "END",
    "CASE",
    "CREATE",
    "FUNCTION",
    "OR",
    "REPLACE",
    "COMMIT",
    "é",
    "U&'",
    "e'",
    "x",
    "CONCURRENTLY",
    "INDEX",
    "1.5e-3",
    ".",
    "\r\n",
    "\u{0}",
];

/// `count` inputs of up to 24 fragments each.
pub(crate) fn inputs(count: usize) -> impl Iterator<Item = String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count).map(move |_| {
        let length = (next() % 24) as usize;
        let mut input = String::new();
        for _ in 0..length {
            let roll = next();
            if roll % 7 == 0 {
                let bytes: Vec<u8> = (0..(roll % 5)).map(|_| next() as u8).collect();
                input.push_str(&String::from_utf8_lossy(&bytes));
            } else {
                input.push_str(FRAGMENTS[(roll as usize / 7) % FRAGMENTS.len()]);
            }
        }
        input
    })
}
