//! Fuzz target: SQL text (the lexer, the statement splitter, `classify`, `find_unterminated`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    migrate_runtime::source::fuzzing::check_sql(data);
});
