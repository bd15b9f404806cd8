//! Transfer progress: shared counters, periodic structured log lines (bytes, rate, ETA) and, when
//! stderr is a terminal, a one-line progress bar redrawn in place.
//!
//! The bar is a plain carriage-return line rather than `indicatif`: one line of text does not
//! justify a dependency, and the job normally runs in a pod where stderr is not a terminal and the
//! structured `tracing` lines are what people read.
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Counters shared by all concurrent copies of one transfer.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    total: AtomicU64,
    done: AtomicU64,
}

impl Progress {
    pub fn new(total_bytes: u64) -> Progress {
        let p = Progress::default();
        p.inner.total.store(total_bytes, Ordering::Relaxed);
        p
    }
    pub fn add(&self, bytes: u64) {
        self.inner.done.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }
    pub fn total(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }
    /// Sets the expected total (when it is known only after listing).
    pub fn set_total(&self, total_bytes: u64) {
        self.inner.total.store(total_bytes, Ordering::Relaxed);
    }

    /// Starts a background task (on the current tokio runtime) that logs a structured
    /// `tracing::info!` line every `interval` and, when stderr is a terminal, redraws a progress
    /// bar a few times a second. The task stops when the [`Reporter`] is finished or dropped.
    pub fn start_reporter(&self, interval: Duration) -> Reporter {
        self.start_reporter_with(interval, std::io::stderr().is_terminal())
    }

    /// [`Progress::start_reporter`] with the bar forced on or off.
    pub fn start_reporter_with(&self, interval: Duration, bar: bool) -> Reporter {
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(report_loop(
            self.clone(),
            interval.max(Duration::from_millis(10)),
            bar,
            stop_rx,
        ));
        Reporter {
            stop: stop_tx,
            task: Some(task),
        }
    }
}

/// The running reporter of [`Progress::start_reporter`].
#[derive(Debug)]
pub struct Reporter {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Stops the reporter after one final summary line.
    pub async fn finish(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn report_loop(
    progress: Progress,
    interval: Duration,
    bar: bool,
    mut stop: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let tick = if bar {
        interval.min(Duration::from_millis(250))
    } else {
        interval
    };
    let mut last_log = Instant::now();
    let mut last_done = progress.done();
    let mut bar_drawn = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => break,
        }
        let now = Instant::now();
        if bar {
            let s = Stats::compute(progress.done(), progress.total(), now - start, None);
            draw_bar(&s);
            bar_drawn = true;
        }
        if now - last_log >= interval {
            let done = progress.done();
            let recent = (done.saturating_sub(last_done)) as f64 / (now - last_log).as_secs_f64();
            let s = Stats::compute(done, progress.total(), now - start, Some(recent));
            if bar_drawn {
                clear_bar();
            }
            s.log("transfer progress");
            last_log = now;
            last_done = done;
        }
    }
    if bar_drawn {
        clear_bar();
    }
    Stats::compute(progress.done(), progress.total(), start.elapsed(), None)
        .log("transfer finished");
}

/// A progress snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub done: u64,
    pub total: u64,
    pub elapsed: Duration,
    /// Bytes per second (recent when given, else the average since the start).
    pub rate: f64,
    /// Remaining time at `rate`, when it can be estimated.
    pub eta: Option<Duration>,
}

impl Stats {
    pub fn compute(done: u64, total: u64, elapsed: Duration, recent_rate: Option<f64>) -> Stats {
        let secs = elapsed.as_secs_f64();
        let average = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let rate = recent_rate.filter(|r| *r > 0.0).unwrap_or(average);
        let remaining = total.saturating_sub(done);
        let eta = if remaining == 0 {
            Some(Duration::ZERO)
        } else if rate > 0.0 {
            Some(Duration::from_secs_f64((remaining as f64 / rate).min(1e9)))
        } else {
            None
        };
        Stats {
            done,
            total,
            elapsed,
            rate,
            eta,
        }
    }

    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            (self.done as f64 * 100.0 / self.total as f64).min(100.0)
        }
    }

    pub fn mib_per_s(&self) -> f64 {
        self.rate / (1024.0 * 1024.0)
    }

    /// `1.5 GiB / 3.0 GiB (50.0%), 80.2 MiB/s, ETA 19s`.
    pub fn line(&self) -> String {
        let eta = self.eta.map_or_else(|| "unknown".to_owned(), fmt_duration);
        format!(
            "{} / {} ({:.1}%), {:.1} MiB/s, ETA {eta}",
            fmt_bytes(self.done),
            fmt_bytes(self.total),
            self.percent(),
            self.mib_per_s()
        )
    }

    fn log(&self, message: &str) {
        tracing::info!(
            bytes_done = self.done,
            bytes_total = self.total,
            percent = (self.percent() * 10.0).round() / 10.0,
            mib_per_s = (self.mib_per_s() * 10.0).round() / 10.0,
            eta_secs = self.eta.map(|d| d.as_secs()),
            elapsed_secs = self.elapsed.as_secs(),
            "{message}: {}",
            self.line()
        );
    }
}

fn draw_bar(s: &Stats) {
    const WIDTH: usize = 30;
    let filled = ((s.percent() / 100.0) * WIDTH as f64).round() as usize;
    let bar: String = "#".repeat(filled.min(WIDTH)) + &"-".repeat(WIDTH - filled.min(WIDTH));
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K[{bar}] {}", s.line());
    let _ = err.flush();
}

fn clear_bar() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

/// Binary units with one decimal: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `42s`, `3m05s`, `2h03m`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_rate_eta_and_text() {
        let mib = 1024 * 1024;
        let s = Stats::compute(100 * mib, 300 * mib, Duration::from_secs(10), None);
        assert!((s.mib_per_s() - 10.0).abs() < 1e-9);
        assert_eq!(s.eta, Some(Duration::from_secs(20)));
        assert_eq!(
            s.line(),
            "100.0 MiB / 300.0 MiB (33.3%), 10.0 MiB/s, ETA 20s"
        );
        // A recent rate wins over the average.
        let s = Stats::compute(
            100 * mib,
            300 * mib,
            Duration::from_secs(10),
            Some(40.0 * mib as f64),
        );
        assert_eq!(s.eta, Some(Duration::from_secs(5)));
        // Nothing moved yet: no ETA; finished: zero.
        assert_eq!(
            Stats::compute(0, 10, Duration::from_secs(1), None).eta,
            None
        );
        assert_eq!(
            Stats::compute(10, 10, Duration::ZERO, None).eta,
            Some(Duration::ZERO)
        );
        assert_eq!(Stats::compute(0, 0, Duration::ZERO, None).percent(), 100.0);
    }

    #[test]
    fn units() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(fmt_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(fmt_duration(Duration::from_secs(7380)), "2h03m");
    }

    #[tokio::test]
    async fn reporter_runs_and_finishes() {
        let p = Progress::new(1000);
        let r = p.start_reporter_with(Duration::from_millis(10), false);
        p.add(400);
        tokio::time::sleep(Duration::from_millis(30)).await;
        p.add(600);
        r.finish().await;
        assert_eq!(p.done(), p.total());
    }
}
