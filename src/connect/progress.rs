//! What `rowstream run` shows while it works: on a terminal a live display (indicatif) with one
//! bar per table being snapshotted (rows, rate, ETA) and then one streaming status line
//! (changes/s, lag, records, retained log); elsewhere the same figures as periodic log lines.
//!
//! Invariants:
//! - The figures are the connector's [`Metrics`] (the ones `/metrics` and REST status show);
//!   this module only reads them, never counts on its own.
//! - Log lines written while the bars are up go through [`LogWriter`], which lifts the bars
//!   for the write, so logs and bars never tear each other.
//! - Nothing here prints row values or secrets: tables, counts and times only.
use crate::metrics::Metrics;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The target of this module's log lines: its path before the layout moved it, which
/// log filters (`ROWSTREAM_LOG`) and the docs name.
const LOG_TARGET: &str = "rowstream::progress";

/// How `run` shows its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// Bars on a terminal, log lines otherwise.
    Auto,
    /// The live display (on stderr).
    Bar,
    /// Periodic log lines.
    Log,
    /// Nothing beyond the usual log.
    Off,
}

/// The display while it is up (for [`LogWriter`]).
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// A `tracing` writer for stderr that lifts the live display while it writes.
pub(crate) struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bars = BARS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bars {
            Some(mp) => mp.suspend(|| std::io::stderr().write_all(buf).map(|_| buf.len())),
            None => std::io::stderr().write_all(buf).map(|_| buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Shows progress until dropped.
pub(crate) struct Progress(Option<tokio::task::JoinHandle<()>>);

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
        // the bars stay on the terminal as they last were (the final status line, or where
        // a snapshot stopped); later log lines go straight to stderr
        BARS.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Start showing `metrics` (log lines every `every` in log mode).
pub(crate) fn start(metrics: Arc<Metrics>, mode: Mode, every: Duration) -> Progress {
    use std::io::IsTerminal as _;
    let mode = match mode {
        Mode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
        Mode::Auto => Mode::Log,
        m => m,
    };
    let task = match mode {
        Mode::Bar => {
            let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
            *BARS.lock().unwrap_or_else(|e| e.into_inner()) = Some(mp.clone());
            Some(tokio::spawn(bars(metrics, mp)))
        }
        Mode::Log => Some(tokio::spawn(log_lines(metrics, every, true))),
        _ => None,
    };
    Progress(task)
}

/// A worker's connector: its snapshot progress lines (no streaming lines: a worker runs many
/// connectors, their figures are on `/metrics` and REST), under a `connector` span naming it,
/// until dropped.
pub(crate) fn snapshot_lines(metrics: Arc<Metrics>, connector: &str, every: Duration) -> Progress {
    use tracing::Instrument as _;
    let span = tracing::info_span!(target: LOG_TARGET, "connector", name = %connector);
    Progress(Some(tokio::spawn(
        log_lines(metrics, every, false).instrument(span),
    )))
}

/// Changes per second between two readings.
struct Rate {
    at: Instant,
    changes: u64,
}

impl Rate {
    fn new(m: &Metrics) -> Rate {
        Rate {
            at: Instant::now(),
            changes: m.changes.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
    /// changes/s since the last call
    fn next(&mut self, m: &Metrics) -> f64 {
        let now = Rate::new(m);
        let secs = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let r = now.changes.saturating_sub(self.changes) as f64 / secs;
        *self = now;
        r
    }
}

/// The streaming figures in one line: `streaming · 1234 changes/s · lag 45 ms · ...`.
fn streaming_line(m: &Metrics, rate: f64) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let lag = m
        .lag_ms()
        .map(|l| format!("lag {}", human_ms(l)))
        .unwrap_or_else(|| "lag -".into());
    let mut s = format!(
        "streaming · {rate:.0} changes/s · {lag} · {} records · {} changes",
        m.records.load(Relaxed),
        m.changes.load(Relaxed)
    );
    let retained = m.source.retained_bytes.load(Relaxed);
    if retained >= 0 {
        s.push_str(&format!(
            " · source log held {}",
            human_bytes(retained as u64)
        ));
    }
    s
}

async fn bars(m: Arc<Metrics>, mp: MultiProgress) {
    let rate = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.0} rows/s", s.per_sec());
    };
    let bar_style = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30}] {pos}/{len} rows · {rate} · ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("rate", rate)
    .progress_chars("=> ");
    let count_style = ProgressStyle::with_template("{spinner} {prefix:.bold} {pos} rows · {rate}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("rate", rate);
    let status = mp.add(ProgressBar::new_spinner());
    status.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut shown: BTreeMap<String, ProgressBar> = BTreeMap::new();
    let mut rate = Rate::new(&m);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut since_rate = Instant::now();
    let mut last_rate = 0.0;
    loop {
        tick.tick().await;
        let snaps = m.snapshots();
        for (table, s) in &snaps {
            match (shown.get(table), s.done) {
                (None, false) => {
                    let b = match s.estimate {
                        Some(n) if n > 0 => {
                            let b = ProgressBar::new(n.max(s.rows));
                            b.set_style(bar_style.clone());
                            b
                        }
                        _ => {
                            let b = ProgressBar::new_spinner();
                            b.set_style(count_style.clone());
                            b
                        }
                    };
                    b.set_prefix(table.clone());
                    b.set_position(s.rows);
                    let b = mp.insert_before(&status, b);
                    shown.insert(table.clone(), b);
                }
                (Some(b), false) => {
                    if b.length().is_some_and(|l| s.rows > l) {
                        b.set_length(s.rows);
                    }
                    b.set_position(s.rows);
                }
                (Some(b), true) => {
                    let took = s.started.map(|t| t.elapsed()).unwrap_or_default();
                    b.finish_and_clear();
                    let _ = mp.println(format!(
                        "snapshot of {table} done: {} rows in {:.1} s",
                        s.rows,
                        took.as_secs_f64()
                    ));
                    shown.remove(table);
                }
                (None, true) => {}
            }
        }
        // a table whose snapshot started over is shown again when it reappears
        shown.retain(|t, b| {
            let keep = snaps.contains_key(t);
            if !keep {
                b.finish_and_clear();
            }
            keep
        });
        if since_rate.elapsed() >= Duration::from_secs(1) {
            last_rate = rate.next(&m);
            since_rate = Instant::now();
        }
        let started = !snaps.is_empty()
            || m.records.load(std::sync::atomic::Ordering::Relaxed) > 0
            || m.lag_ms().is_some();
        if !started {
            status.set_message("starting: connecting to the database and the broker");
        } else if shown.is_empty() {
            status.set_message(streaming_line(&m, last_rate));
        } else {
            status.set_message(format!("snapshotting {} table(s)", shown.len()));
        }
        status.tick();
    }
}

/// The one stream of progress lines: `snapshot progress` per table being snapshotted (the
/// snapshot driver logs only when a table's snapshot starts and finishes), then `streaming`
/// (when `streaming`). Values are plain numbers; one not known is left out, never `None`.
async fn log_lines(m: Arc<Metrics>, every: Duration, streaming: bool) {
    let mut rate = Rate::new(&m);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut snapshotting = false;
        for (table, s) in m.snapshots() {
            if s.done {
                continue; // the snapshot driver logs "snapshot finished"
            }
            snapshotting = true;
            let secs = s.started.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
            let per_sec = if secs > 0.0 {
                s.rows as f64 / secs
            } else {
                0.0
            };
            let rows_per_sec = per_sec.round() as u64;
            match s.estimate.filter(|&n| n > 0) {
                Some(n) => {
                    let eta_secs = match per_sec > 0.0 && n > s.rows {
                        true => ((n - s.rows) as f64 / per_sec).round() as u64,
                        false => 0,
                    };
                    tracing::info!(target: LOG_TARGET,
                        table = %table,
                        rows = s.rows,
                        estimated_rows = n,
                        pct = (s.rows * 100 / n).min(100),
                        rows_per_sec,
                        eta_secs,
                        "snapshot progress"
                    );
                }
                None => tracing::info!(target: LOG_TARGET,
                    table = %table,
                    rows = s.rows,
                    rows_per_sec,
                    "snapshot progress"
                ),
            }
        }
        let r = rate.next(&m);
        if !snapshotting && streaming {
            use std::sync::atomic::Ordering::Relaxed;
            tracing::info!(target: LOG_TARGET,
                changes_per_sec = r.round() as u64,
                lag_ms = m.lag_ms().unwrap_or(-1),
                records = m.records.load(Relaxed),
                changes = m.changes.load(Relaxed),
                source_retained_bytes = m.source.retained_bytes.load(Relaxed),
                "streaming"
            );
        }
    }
}

fn human_ms(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1e3)
    } else {
        format!("{:.1} min", ms as f64 / 6e4)
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_reads_the_metrics() {
        let m = Metrics::default();
        assert_eq!(
            streaming_line(&m, 0.0),
            "streaming · 0 changes/s · lag - · 0 records · 0 changes"
        );
        m.changes.store(1200, std::sync::atomic::Ordering::Relaxed);
        m.records.store(1500, std::sync::atomic::Ordering::Relaxed);
        m.source
            .retained_bytes
            .store(3 * 1_048_576, std::sync::atomic::Ordering::Relaxed);
        m.delivered_event_time.store(
            crate::model::time::now_ms() - 2500,
            std::sync::atomic::Ordering::Relaxed,
        );
        let line = streaming_line(&m, 840.4);
        assert!(
            line.starts_with("streaming · 840 changes/s · lag 2.5 s · 1500 records · 1200 changes · source log held 3.0 MiB")
                || line.starts_with("streaming · 840 changes/s · lag 2.6 s"),
            "{line}"
        );
        assert_eq!(human_ms(45), "45 ms");
        assert_eq!(human_ms(125_000), "2.1 min");
        assert_eq!(human_bytes(512), "512 B");
    }
}
