//! Fuzz target: names in a migrations directory (file names, diesel directories, versions).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    migrate_runtime::source::fuzzing::check_file_name(data);
});
