//! Running tenants on a bounded number of threads, each keeping its own connection, and the
//! failure policy that decides whether another tenant may start.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::report::SkipReason;

/// What a fleet does after a tenant fails (or cannot be reached).
///
/// ```
/// use migrate_runtime::fleet::FailurePolicy;
/// let strict = FailurePolicy::Stop;
/// let lenient = FailurePolicy::Continue { budget: Some(10) };
/// # let _ = (strict, lenient);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// No tenant starts after the first failure; the running ones finish (the default).
    #[default]
    Stop,
    /// Keep going; with a budget, stop starting tenants once more than `budget` have failed.
    Continue {
        /// How many failed tenants are tolerated (`None`: any number).
        budget: Option<usize>,
    },
}

/// Decides, before each tenant starts, whether it may.
pub(crate) struct Gate {
    policy: FailurePolicy,
    /// Failures so far, and the reason no more tenant starts once one is set.
    state: Mutex<(usize, Option<SkipReason>)>,
}

impl Gate {
    pub(crate) fn new(policy: FailurePolicy) -> Gate {
        Gate {
            policy,
            state: Mutex::new((0, None)),
        }
    }

    /// `None` when a tenant may start, otherwise why not.
    pub(crate) fn closed(&self) -> Option<SkipReason> {
        self.lock().1
    }

    /// Counts a finished tenant; a failure may close the gate.
    pub(crate) fn finished(&self, failed: bool) {
        if !failed {
            return;
        }
        let mut state = self.lock();
        state.0 += 1;
        let reason = match self.policy {
            FailurePolicy::Stop => Some(SkipReason::StoppedAfterFailure),
            FailurePolicy::Continue {
                budget: Some(budget),
            } if state.0 > budget => Some(SkipReason::BudgetExhausted),
            FailurePolicy::Continue { .. } => None,
        };
        state.1 = state.1.or(reason);
    }

    /// Closes the gate for every tenant still waiting.
    pub(crate) fn close(&self, reason: SkipReason) {
        let mut state = self.lock();
        state.1 = state.1.or(Some(reason));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Option<SkipReason>)> {
        // A panicking tenant thread is re-raised by the scope; the counts stay usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs `job` for each position of `order` on at most `parallel` threads. Each thread makes
/// its state with `fresh` once and passes it to every job it runs (a connection kept across
/// tenants). A position whose turn comes while the gate is closed gets `skip(reason)`.
/// Results come back in `order`'s order.
pub(crate) fn run<S, R, F, J, K>(
    order: &[usize],
    parallel: usize,
    gate: &Gate,
    fresh: F,
    job: J,
    skip: K,
) -> Vec<R>
where
    R: Send,
    F: Fn() -> S + Sync,
    J: Fn(&mut S, usize) -> R + Sync,
    K: Fn(usize, SkipReason) -> R + Sync,
{
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = order.iter().map(|_| Mutex::new(None)).collect();
    let threads = parallel.clamp(1, order.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut state = None;
                loop {
                    let slot = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&position) = order.get(slot) else {
                        break;
                    };
                    let result = match gate.closed() {
                        Some(reason) => skip(position, reason),
                        None => job(state.get_or_insert_with(&fresh), position),
                    };
                    *results[slot].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every slot is filled before the scope ends")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_skips_what_has_not_started() {
        let gate = Gate::new(FailurePolicy::Stop);
        let order: Vec<usize> = (0..10).collect();
        let results = run(
            &order,
            1,
            &gate,
            || (),
            |_, position| {
                gate.finished(position == 3);
                Ok(position)
            },
            |position, reason| Err((position, reason)),
        );
        assert_eq!(results[..4], [Ok(0), Ok(1), Ok(2), Ok(3)]);
        assert_eq!(results[4], Err((4, SkipReason::StoppedAfterFailure)));
        assert_eq!(results.len(), 10);
    }

    #[test]
    fn budget_tolerates_that_many() {
        let gate = Gate::new(FailurePolicy::Continue { budget: Some(2) });
        gate.finished(true);
        gate.finished(true);
        assert_eq!(gate.closed(), None);
        gate.finished(true);
        assert_eq!(gate.closed(), Some(SkipReason::BudgetExhausted));
    }
}
