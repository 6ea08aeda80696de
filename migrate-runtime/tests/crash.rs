//! The crash harness: the real `migrate` binary applies 200 migrations (every tenth outside a
//! transaction) and is killed with SIGKILL at a random moment, trial after trial. After every
//! kill the catalog must agree with the history (see `support::check_invariants`), a killed
//! no-transaction migration must make the next run refuse with the documented message, and
//! after the documented recovery the run must finish with the schema a clean run produces.
//!
//! CI runs 20 trials. The long run (figures in tests/RELIABILITY.md):
//! `CRASH_TRIALS=500 cargo test --release -p migrate-runtime --all-features --test crash -- --nocapture`;
//! `CRASH_SEED=<n>` replays a run's kill times.
#![allow(clippy::print_stderr)] // The harness reports its figures.

mod support;

use std::time::{Duration, Instant};

use migrate_runtime::testing::TestServer;
use migrate_test_support::process::{spawn, text};
use support::{
    assert_refuses_unfinished, check_invariants, migrate, recover, schema_fingerprint,
    wait_for_other_sessions, COUNT,
};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[test]
fn killed_at_random_moments_never_half_migrated() {
    let trials = setting("CRASH_TRIALS", 20);
    let seed = setting(
        "CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    support::write_fault_set(dir.path());

    // A clean run: the schema every trial must end with, and how long a whole run takes.
    let clean = server.create_database().unwrap();
    let started = Instant::now();
    let output = migrate(dir.path(), &clean.url())
        .arg("up")
        .output()
        .unwrap();
    let clean_run = started.elapsed();
    assert!(output.status.success(), "{}", text(&output));
    let expected = schema_fingerprint(&mut clean.client().unwrap());

    let (mut finished_first, mut mid_run, mut unfinished_no_tx) = (0, 0, 0);
    for trial in 0..trials {
        let database = server.create_database().unwrap();
        let url = database.url();
        let kill_after = Duration::from_micros(rng.u64(0..=clean_run.as_micros() as u64));
        let mut child = spawn(migrate(dir.path(), &url).arg("up"));
        std::thread::sleep(kill_after);
        let killed = child.try_wait().unwrap().is_none();
        child.kill().unwrap(); // SIGKILL
        let output = child.wait_with_output().unwrap();

        let mut client = database.client().unwrap();
        wait_for_other_sessions(&mut client);
        let observed = check_invariants(&mut client);
        let context = format!(
            "trial {trial} (CRASH_SEED={seed}), killed after {kill_after:?} with {} applied",
            observed.applied.len()
        );
        if !killed {
            assert!(output.status.success(), "{context}:\n{}", text(&output));
            finished_first += 1;
        } else if (observed.applied.len() as i64) < COUNT {
            mid_run += 1;
        }

        let rerun = migrate(dir.path(), &url).arg("up").output().unwrap();
        if let Some((version, _)) = observed.unfinished {
            unfinished_no_tx += 1;
            assert_refuses_unfinished(&rerun, version);
            recover(&mut client, dir.path(), &url, version);
            let after = migrate(dir.path(), &url).arg("up").output().unwrap();
            assert!(after.status.success(), "{context}:\n{}", text(&after));
        } else {
            assert!(rerun.status.success(), "{context}:\n{}", text(&rerun));
        }
        let finished = check_invariants(&mut client);
        assert_eq!(finished.applied.len() as i64, COUNT, "{context}");
        assert_eq!(schema_fingerprint(&mut client), expected, "{context}");
    }
    eprintln!(
        "crash harness: {trials} trials (CRASH_SEED={seed}), a clean run takes {clean_run:?}: \
         {mid_run} killed mid-run ({unfinished_no_tx} inside a no-transaction migration), \
         {finished_first} finished before the kill; every invariant held and every recovery \
         ended in the clean run's schema"
    );
    assert!(mid_run > 0, "no trial killed a run in the middle");
}
