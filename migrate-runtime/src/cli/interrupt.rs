//! Ctrl-C and SIGTERM while connected: the statement the server is running for us is
//! cancelled (a backend waiting for a lock would otherwise stay in the queue, and its
//! statement run and commit after we are gone), the command ends with what it was doing
//! rolled back, and the process exits with 130 (SIGINT) or 143 (SIGTERM).
//!
//! Until a connection is made the signals keep their default action; once the handler is
//! installed, a signal while no connection is armed (the command has ended) exits at once
//! with the same codes. The cancel request is sent again every second while the run goes on
//! (one that arrives between two statements cancels nothing). A second signal, or a run still
//! going [`GRACE`] after the signal (the server cannot be reached), exits at once: the
//! server then rolls back what was not committed when it notices the connection is gone.
#![allow(clippy::print_stderr)] // The command line's voice, from the signal thread.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::fleet::FleetStopper;
use crate::CancelHandle;

/// How long the run has to end after the signal before the process exits anyway.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// How often the cancel request is sent again while the command has not ended.
const RESEND: Duration = Duration::from_secs(1);

/// A signal that stops the command line, with the exit code it gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Ctrl-C.
    Interrupt,
    /// `kill`, a container runtime stopping the process.
    Terminate,
}

impl Signal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => crate::outcome::exit::INTERRUPTED,
            Signal::Terminate => crate::outcome::exit::TERMINATED,
        }
    }

    #[cfg(unix)]
    fn from_number(number: i32) -> Option<Signal> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        match number {
            SIGINT => Some(Signal::Interrupt),
            SIGTERM => Some(Signal::Terminate),
            _ => None,
        }
    }

    fn number(self) -> i32 {
        match self {
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }
}

/// The signal received, as its number (0: none yet).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// What a signal stops.
#[derive(Clone)]
pub(crate) enum Target {
    /// The statement one connection is running.
    Connection(CancelHandle),
    /// A fleet run: no tenant starts, the running ones are cancelled.
    Fleet(FleetStopper),
}

impl Target {
    fn cancel(&self) -> Result<(), postgres::Error> {
        match self {
            Target::Connection(handle) => handle.cancel(),
            Target::Fleet(stopper) => {
                stopper.stop();
                Ok(())
            }
        }
    }
}

/// What a signal stops now.
static CONNECTION: OnceLock<Mutex<Option<Target>>> = OnceLock::new();

/// From now on, SIGINT and SIGTERM cancel what `handle`'s connection is running.
pub(crate) fn arm(handle: CancelHandle) {
    arm_target(Target::Connection(handle));
}

/// From now on, SIGINT and SIGTERM stop the fleet run `stopper` belongs to.
pub(crate) fn arm_fleet(stopper: FleetStopper) {
    arm_target(Target::Fleet(stopper));
}

fn arm_target(target: Target) {
    let mut installed = false;
    let slot = CONNECTION.get_or_init(|| {
        installed = true;
        Mutex::new(None)
    });
    *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(target);
    if installed {
        install();
    }
}

/// The command is over: a signal from now on exits at once.
pub(crate) fn disarm() {
    if let Some(slot) = CONNECTION.get() {
        *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// The target armed now, if any.
fn armed() -> Option<Target> {
    CONNECTION.get().and_then(|slot| {
        slot.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    })
}

/// The signal that stopped the command, if one arrived.
pub(crate) fn received() -> Option<Signal> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        2 => Some(Signal::Interrupt),
        _ => Some(Signal::Terminate),
    }
}

#[cfg(unix)]
fn install() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(error) => {
            // The signals keep their default action: the process dies without cancelling.
            eprintln!("warning: cannot handle SIGINT and SIGTERM ({error}): stopping this command will not cancel its running statement");
            return;
        }
    };
    std::thread::spawn(move || {
        for number in signals.forever() {
            let Some(signal) = Signal::from_number(number) else {
                continue;
            };
            let first = RECEIVED
                .compare_exchange(0, signal.number(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            match armed() {
                Some(handle) if first => on_first(signal, handle),
                _ => {
                    eprintln!("{}: exiting at once", signal.name());
                    std::process::exit(i32::from(signal.exit_code()));
                }
            }
        }
    });
}

#[cfg(not(unix))]
fn install() {}

/// Cancels the running statement, and exits if the run has not ended [`GRACE`] later.
fn on_first(signal: Signal, handle: Target) {
    let what = match handle {
        Target::Connection(_) => "cancelling the running statement",
        Target::Fleet(_) => "starting no more tenants and cancelling the running ones",
    };
    eprintln!("{}: {what} (again to exit at once)", signal.name());
    // On its own thread: over a dead network the request itself waits for connect_timeout.
    // A request that arrives between two statements cancels nothing, and the run goes on to
    // the next one: it is sent again every [`RESEND`] until the process exits.
    std::thread::spawn(move || {
        let mut warned = false;
        loop {
            if let Err(error) = handle.cancel() {
                if !warned {
                    let cause = std::error::Error::source(&error)
                        .map(|cause| format!(": {cause}"))
                        .unwrap_or_default();
                    eprintln!("warning: the cancel request failed: {error}{cause}");
                    warned = true;
                }
            }
            std::thread::sleep(RESEND);
        }
    });
    std::thread::spawn(move || {
        std::thread::sleep(GRACE);
        eprintln!(
            "error: interrupted by {}: the command had not stopped {} s after the signal; exiting without waiting (the server rolls back what was not committed once it notices the connection is gone)",
            signal.name(),
            GRACE.as_secs()
        );
        std::process::exit(i32::from(signal.exit_code()));
    });
}
