//! The CPU time the server's backends spent on a run (user and kernel), read from the
//! postmaster's count of its exited children, so it covers every tool alike, whether it runs in
//! this process or its own.

use std::time::{Duration, Instant};

use migrate_runtime::testing::TestServer;

/// CPU time of exited backends, user and system.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Cpu {
    pub(crate) user: Duration,
    pub(crate) system: Duration,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Reads the postmaster's counters; where they are is looked up once per server.
pub(crate) struct Meter {
    /// `/proc/<postmaster pid>/stat`; `None` where it cannot be found (off Linux).
    stat: Option<String>,
}

impl Meter {
    pub(crate) fn of(server: &TestServer) -> Meter {
        let stat = (|| {
            let mut admin = server.connect("postgres").ok()?;
            let data: String = admin.query_one("SHOW data_directory", &[]).ok()?.get(0);
            let pid_file = std::fs::read_to_string(format!("{data}/postmaster.pid")).ok()?;
            Some(format!("/proc/{}/stat", pid_file.lines().next()?.trim()))
        })();
        Meter { stat }
    }

    /// What the postmaster's exited children have used so far.
    pub(crate) fn so_far(&self) -> Option<Cpu> {
        let stat = std::fs::read_to_string(self.stat.as_ref()?).ok()?;
        // Fields after the command name (which may hold spaces, so split after its `)`):
        // cutime and cstime are the 16th and 17th fields of the whole line.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // /proc reports in USER_HZ, which Linux fixes at 100 per second for user space.
        let ticks = |index: usize| -> Option<Duration> {
            Some(Duration::from_millis(
                fields.get(index)?.parse::<u64>().ok()? * 10,
            ))
        };
        Some(Cpu {
            user: ticks(13)?,
            system: ticks(14)?,
        })
    }
}

/// Waits (up to 30 s) until no session is connected to `database`, so that its backend has
/// exited and been counted.
pub(crate) fn wait_for_backends_to_exit(server: &TestServer, database: &str) {
    let Ok(mut admin) = server.connect("postgres") else {
        return;
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let connected: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&database],
            )
            .map_or(0, |row| row.get(0));
        if connected == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(admin);
    // The postmaster adds a child's time when it reaps it, just after the exit.
    std::thread::sleep(Duration::from_millis(100));
}
