//! A fleet run's progress on stderr: one bar redrawn in place on a terminal (with a line for
//! each tenant that did not succeed), or a line per finished tenant in a log.
#![allow(clippy::print_stderr)] // The fleet commands' own voice.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::fleet::{TenantOutcome, TenantResult};

/// `--progress`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Style {
    /// A bar when stderr is a terminal, lines otherwise.
    #[default]
    Auto,
    /// One bar, redrawn in place.
    Bar,
    /// A line per finished tenant (what a log wants).
    Lines,
}

impl Style {
    fn resolve(self) -> Style {
        match self {
            Style::Auto
                if std::io::stderr().is_terminal()
                    && std::env::var("TERM").map_or(true, |term| term != "dumb") =>
            {
                Style::Bar
            }
            Style::Auto => Style::Lines,
            chosen => chosen,
        }
    }
}

/// How often the bar is redrawn at most (a fleet of small tenants finishes hundreds a second).
const REDRAW: Duration = Duration::from_millis(100);

/// The progress of one `fleet up`.
pub(crate) struct Progress {
    style: Style,
    total: usize,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    finished: usize,
    failed: usize,
    drawn: Option<Instant>,
}

impl Progress {
    pub(crate) fn new(total: usize, style: Style) -> Progress {
        Progress {
            style: style.resolve(),
            total,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    /// Tells about a finished tenant (skipped ones are summed up by the report instead).
    /// `line` is how the tenant's result reads on its own line.
    pub(crate) fn finished(&self, result: &TenantResult, line: &str) {
        if matches!(result.outcome, TenantOutcome::Skipped { .. }) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.finished += 1;
        let trouble = !result.outcome.succeeded();
        if trouble {
            state.failed += 1;
        }
        let mut stderr = std::io::stderr().lock();
        match self.style {
            Style::Bar => {
                let due = state.drawn.is_none_or(|at| at.elapsed() >= REDRAW);
                if trouble {
                    let _ = write!(stderr, "\r\x1b[2K{line}\n");
                }
                if trouble || due || state.finished == self.total {
                    let bar = bar(
                        state.finished,
                        self.total,
                        state.failed,
                        self.started.elapsed(),
                    );
                    let _ = write!(stderr, "\r\x1b[2K{bar}");
                    let _ = stderr.flush();
                    state.drawn = Some(Instant::now());
                }
            }
            Style::Auto | Style::Lines => {
                let width = self.total.to_string().len();
                let _ = writeln!(stderr, "[{:>width$}/{}] {line}", state.finished, self.total);
            }
        }
    }

    /// Ends the bar's line, so that what follows starts on a line of its own.
    pub(crate) fn done(&self) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if self.style == Style::Bar && state.drawn.is_some() {
            eprintln!();
        }
    }
}

/// `[##########>         ] 512/1000 tenants, 2 failed, 48.1/s, about 10 s left`.
fn bar(finished: usize, total: usize, failed: usize, elapsed: Duration) -> String {
    const WIDTH: usize = 24;
    let filled = (finished * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let mut cells = "#".repeat(filled);
    if filled < WIDTH {
        cells.push('>');
        cells.push_str(&" ".repeat(WIDTH - filled - 1));
    }
    let rate = finished as f64 / elapsed.as_secs_f64().max(0.001);
    let failed = match failed {
        0 => String::new(),
        n => format!(", {n} failed"),
    };
    let left = total.saturating_sub(finished);
    let eta = if left == 0 || finished == 0 {
        String::new()
    } else {
        format!(", about {:.0} s left", left as f64 / rate)
    };
    format!("[{cells}] {finished}/{total} tenants{failed}, {rate:.1}/s{eta}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_finished_share_and_says_what_is_left() {
        let half = bar(50, 100, 0, Duration::from_secs(10));
        assert_eq!(
            half,
            "[############>           ] 50/100 tenants, 5.0/s, about 10 s left"
        );
        let failing = bar(100, 100, 3, Duration::from_secs(4));
        assert_eq!(
            failing,
            "[########################] 100/100 tenants, 3 failed, 25.0/s"
        );
        assert!(bar(0, 10, 0, Duration::ZERO).starts_with("[>    "));
    }
}
