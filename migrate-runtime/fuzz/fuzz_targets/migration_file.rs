//! Fuzz target: a migration file's bytes (decoding, markers, directives, section checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    migrate_runtime::source::fuzzing::check_file(data);
});
