//! The benchmark's results as Markdown tables with medians, spreads and ratios.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::compile::Compiled;
use crate::tools::{Sample, Tool};

#[derive(Default)]
pub(crate) struct Table {
    /// Apply times by repetition, so tools can be compared within the same repetition.
    apply: BTreeMap<(usize, Tool), Vec<(usize, Duration)>>,
    /// The server's CPU (user, system) for each of those runs, where it could be read.
    server_cpu: BTreeMap<(usize, Tool), Vec<(Duration, Duration)>>,
    counts: BTreeMap<(usize, Tool), (f64, f64)>,
    noop: BTreeMap<(usize, Tool), (Vec<Duration>, usize)>,
    delayed: BTreeMap<(usize, Tool), Vec<Duration>>,
    proxy_control: BTreeMap<usize, Vec<Duration>>,
    pub(crate) compile: Vec<Compiled>,
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// The median over repetitions of `ours ÷ theirs` within one repetition: the tools take
/// turns inside each repetition, so slow drift of the machine cancels out of each ratio.
fn paired_ratio(ours: &[(usize, Duration)], theirs: &[(usize, Duration)]) -> Option<f64> {
    let mut ratios: Vec<f64> = ours
        .iter()
        .filter_map(|&(rep, time)| {
            let (_, other) = theirs.iter().find(|(r, _)| *r == rep)?;
            Some(time.as_secs_f64() / other.as_secs_f64())
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied()
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

fn ratio(ours: Duration, theirs: Duration) -> String {
    format!("{:.2}×", ours.as_secs_f64() / theirs.as_secs_f64())
}

impl Table {
    pub(crate) fn add_apply(&mut self, n: usize, rep: usize, tool: Tool, sample: Sample) {
        self.apply
            .entry((n, tool))
            .or_default()
            .push((rep, sample.time));
        if let Some(cpu) = sample.server_cpu {
            let runs = self.server_cpu.entry((n, tool)).or_default();
            runs.push((cpu.user, cpu.system));
        }
    }

    pub(crate) fn counts(&mut self, n: usize, tool: Tool, counts: (f64, f64)) {
        self.counts.insert((n, tool), counts);
    }

    pub(crate) fn noop(&mut self, n: usize, tool: Tool, noop: (Vec<Duration>, usize)) {
        self.noop.insert((n, tool), noop);
    }

    pub(crate) fn delayed(&mut self, n: usize, tool: Tool, samples: Vec<Duration>) {
        self.delayed.insert((n, tool), samples);
    }

    pub(crate) fn proxy_control(&mut self, n: usize, samples: Vec<Duration>) {
        self.proxy_control.insert(n, samples);
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### Apply all pending (median of the runs, [min–max]; ratios: median of the per-repetition ratios)\n"
        );
        let _ = writeln!(
            out,
            "| N | tool | time | server CPU, user + system | ÷ psql floor | ÷ refinery (same mode) |\n|---|---|---|---|---|---|"
        );
        for (&(n, tool), by_rep) in &self.apply {
            let samples: Vec<Duration> = by_rep.iter().map(|&(_, time)| time).collect();
            let time = median(&samples);
            let spread = format!(
                "{}–{}",
                ms(*samples.iter().min().unwrap()),
                ms(*samples.iter().max().unwrap())
            );
            let versus_tool = |other: Tool| {
                self.apply
                    .get(&(n, other))
                    .and_then(|theirs| paired_ratio(by_rep, theirs))
                    .map_or("–".to_owned(), |r| format!("{r:.2}×"))
            };
            let floor = versus_tool(Tool::Psql);
            let peer = match tool {
                Tool::Ours => Some(Tool::Refinery),
                Tool::OursGrouped => Some(Tool::RefineryGrouped),
                _ => None,
            };
            let versus = peer.map_or("–".to_owned(), versus_tool);
            let cpu = self
                .server_cpu
                .get(&(n, tool))
                .map_or("–".to_owned(), |runs| {
                    let user: Vec<Duration> = runs.iter().map(|r| r.0).collect();
                    let system: Vec<Duration> = runs.iter().map(|r| r.1).collect();
                    format!("{} + {}", seconds(median(&user)), seconds(median(&system)))
                });
            let _ = writeln!(
                out,
                "| {n} | {} | {} [{spread}] | {cpu} | {floor} | {versus} |",
                tool.label(),
                ms(time)
            );
        }
        let _ = writeln!(
            out,
            "\n### Round trips and committed transactions per migration (apply all)\n"
        );
        let _ = writeln!(
            out,
            "| N | tool | round trips | commits |\n|---|---|---|---|"
        );
        for (&(n, tool), (round_trips, commits)) in &self.counts {
            let _ = writeln!(
                out,
                "| {n} | {} | {round_trips:.2} | {commits:.2} |",
                tool.label()
            );
        }
        let _ = writeln!(
            out,
            "\n### Start-up with nothing pending (median; round trips after connecting)\n"
        );
        let _ = writeln!(
            out,
            "| N applied | tool | time | ÷ refinery | round trips |\n|---|---|---|---|---|"
        );
        for (&(n, tool), (samples, round_trips)) in &self.noop {
            let versus = match tool {
                Tool::Ours => self
                    .noop
                    .get(&(n, Tool::Refinery))
                    .map_or("–".to_owned(), |r| ratio(median(samples), median(&r.0))),
                _ => "–".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {versus} | {round_trips} |",
                tool.label(),
                ms(median(samples))
            );
        }
        if !self.delayed.is_empty() {
            let _ = writeln!(
                out,
                "\n### Apply all through a proxy adding latency each way\n"
            );
            let _ = writeln!(
                out,
                "| N | tool | time | refinery ÷ this |\n|---|---|---|---|"
            );
            for (&(n, tool), samples) in &self.delayed {
                let time = median(samples);
                let speedup = self
                    .delayed
                    .get(&(n, Tool::Refinery))
                    .map_or("–".to_owned(), |r| {
                        format!("{:.2}×", median(r).as_secs_f64() / time.as_secs_f64())
                    });
                let _ = writeln!(out, "| {n} | {} | {} | {speedup} |", tool.label(), ms(time));
            }
            for (n, samples) in &self.proxy_control {
                let _ = writeln!(
                    out,
                    "| {n} | ours, per-migration, same proxy without added latency (control) | {} | – |",
                    ms(median(samples))
                );
            }
        }
        if !self.compile.is_empty() {
            let _ = writeln!(
                out,
                "\n### Compiling a crate that embeds N files (dependencies prebuilt)\n"
            );
            let _ = writeln!(out, "| N | profile | ours | refinery | refinery ÷ ours | ours binary |\n|---|---|---|---|---|---|");
            let find = |n: usize, tool: &str, release: bool| {
                self.compile
                    .iter()
                    .find(|c| c.n == n && c.tool == tool && c.release == release)
            };
            for c in self.compile.iter().filter(|c| c.tool == "ours") {
                let theirs = find(c.n, "refinery", c.release);
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.2} s | {} | {} | {:.1} MB |",
                    c.n,
                    if c.release { "release" } else { "debug" },
                    c.time.as_secs_f64(),
                    theirs.map_or("–".to_owned(), |t| format!(
                        "{:.2} s",
                        t.time.as_secs_f64()
                    )),
                    theirs.map_or("–".to_owned(), |t| format!(
                        "{:.1}×",
                        t.time.as_secs_f64() / c.time.as_secs_f64()
                    )),
                    c.binary_bytes as f64 / 1e6,
                );
            }
            let release: Vec<&Compiled> = self
                .compile
                .iter()
                .filter(|c| c.tool == "ours" && c.release)
                .collect();
            if let (Some(small), Some(large)) = (release.first(), release.last()) {
                if large.sql_bytes > small.sql_bytes {
                    let growth = (large.binary_bytes as f64 - small.binary_bytes as f64)
                        / ((large.sql_bytes - small.sql_bytes) as f64 / 1e6);
                    let _ = writeln!(
                        out,
                        "\nRelease binary growth: {:.2} MB per MB of SQL embedded.",
                        growth / 1e6
                    );
                }
            }
        }
        out
    }
}
