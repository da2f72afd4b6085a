//! Progress lines for the phases that can take long: staging large or many
//! files, building the pack, uploading it, uploading LFS objects.
//!
//! A [`Meter`] counts what a phase did; its clock starts with the first
//! thing done (waiting for a connection or an answer is not the phase);
//! once the phase has run for [`QUIET_FOR`], it prints a plain line at most every [`EVERY`] (the
//! Pipelines log is not a terminal: no carriage-return bars), with
//! done/total, the rate and, where the total is known, the time left. A
//! phase that ends before it spoke says nothing; one that spoke says when it
//! is done. Lines go to the sink [`install`] sets (the run's logger, which
//! redacts); none is set with PROGRESS=false, and then a meter only counts.
//!
//! Owns when and how progress is said, nothing about the phases themselves;
//! meters are shared across threads (the upload is counted on reqwest's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A phase says nothing for this long (most runs never speak).
pub const QUIET_FOR: Duration = Duration::from_secs(2);
/// At most one line per phase this often.
pub const EVERY: Duration = Duration::from_secs(3);

type Sink = Arc<dyn Fn(&str) + Send + Sync>;

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Where progress lines go (None: nowhere).
pub fn install(sink: Option<Sink>) {
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = sink;
}

/// What a meter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Objects (of a pack).
    Objects,
}

pub struct Meter {
    phase: &'static str,
    unit: Unit,
    total: AtomicU64,
    done: AtomicU64,
    /// When the first thing was done (None: nothing yet).
    started: Mutex<Option<Instant>>,
    /// When the last line was printed (None: never).
    last: Mutex<Option<Instant>>,
}

/// `total` 0: not known.
pub fn meter(phase: &'static str, unit: Unit, total: u64) -> Arc<Meter> {
    Arc::new(Meter {
        phase,
        unit,
        total: AtomicU64::new(total),
        done: AtomicU64::new(0),
        started: Mutex::new(None),
        last: Mutex::new(None),
    })
}

impl Meter {
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.tick();
    }

    /// Sets what is done (and the total, when a callback learns it late).
    pub fn set(&self, done: u64, total: u64) {
        self.done.store(done, Ordering::Relaxed);
        if total > 0 {
            self.total.store(total, Ordering::Relaxed);
        }
        self.tick();
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Adds `n` to the total (a batch learns what it must send).
    pub fn grow(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    fn elapsed(&self) -> Option<Duration> {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if started.is_none() && self.done() > 0 {
            *started = Some(Instant::now());
        }
        started.map(|s| s.elapsed())
    }

    fn tick(&self) {
        let Some(elapsed) = self.elapsed() else {
            return;
        };
        if elapsed < QUIET_FOR {
            return;
        }
        let Some(sink) = SINK.read().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        sink(&line(
            self.phase,
            self.unit,
            self.done(),
            self.total.load(Ordering::Relaxed),
            elapsed,
        ));
    }

    /// The phase ended (`ok`: as it should): a closing line if it said
    /// anything before.
    pub fn finish(&self, ok: bool) {
        let spoke = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if !spoke {
            return;
        }
        if let Some(sink) = SINK.read().unwrap_or_else(|e| e.into_inner()).clone() {
            sink(&format!(
                "{}: {}, {} in {:.1} s.",
                self.phase,
                if ok { "done" } else { "stopped" },
                amount(self.unit, self.done()),
                self.elapsed().unwrap_or_default().as_secs_f64()
            ));
        }
    }
}

/// `Uploading: 45.0 MiB of 200.0 MiB (22%), 8.1 MiB/s, about 19 s left`.
pub fn line(phase: &str, unit: Unit, done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    let mut out = format!("{phase}: {}", amount(unit, done));
    if total > 0 {
        let total = total.max(done);
        out.push_str(&format!(
            " of {} ({}%)",
            amount(unit, total),
            done * 100 / total.max(1)
        ));
    }
    if unit == Unit::Bytes {
        out.push_str(&format!(", {}/s", size(rate as u64)));
    }
    if total > done && rate > 0.0 {
        let left = (total - done) as f64 / rate;
        out.push_str(&format!(", about {} left", duration(left)));
    }
    out.push('.');
    out
}

fn amount(unit: Unit, n: u64) -> String {
    match unit {
        Unit::Bytes => size(n),
        Unit::Objects => format!("{n} objects"),
    }
}

/// `12 B`, `1.5 KiB`, `200.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s < 90 {
        format!("{s} s")
    } else if s < 5400 {
        format!("{} min", (s + 30) / 60)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_done_total_rate_and_time_left() {
        let mib = 1024 * 1024;
        let secs = Duration::from_secs;
        assert_eq!(
            line("Uploading", Unit::Bytes, 45 * mib, 200 * mib, secs(5)),
            "Uploading: 45.0 MiB of 200.0 MiB (22%), 9.0 MiB/s, about 17 s left."
        );
        // Total unknown: no share, no time left.
        assert_eq!(
            line("Uploading", Unit::Bytes, 10 * mib, 0, secs(4)),
            "Uploading: 10.0 MiB, 2.5 MiB/s."
        );
        assert_eq!(
            line("Building the pack", Unit::Objects, 250, 1000, secs(10)),
            "Building the pack: 250 objects of 1000 objects (25%), about 30 s left."
        );
        assert_eq!(
            line("Staging", Unit::Bytes, 1536 * mib, 3072 * mib, secs(120)),
            "Staging: 1.5 GiB of 3.0 GiB (50%), 12.8 MiB/s, about 2 min left."
        );
        assert_eq!(duration(125.0), "2 min");
        assert_eq!(duration(7200.0), "2.0 h");
        assert_eq!(size(1536), "1.5 KiB");
    }

    /// A meter whose first work was `ago`.
    fn started(phase: &'static str, total: u64, ago: Duration) -> Arc<Meter> {
        let m = meter(phase, Unit::Bytes, total);
        m.done.store(1, Ordering::Relaxed);
        *m.started.lock().unwrap() = Some(Instant::now() - ago);
        m
    }

    #[test]
    fn a_long_phase_speaks_at_most_every_few_seconds_then_says_it_is_done() {
        let said = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = said.clone();
        install(Some(Arc::new(move |l: &str| {
            sink.lock().unwrap().push(l.to_owned())
        })));
        let m = started("Long", 100, Duration::from_secs(5));
        m.set(10, 0);
        m.set(20, 0); // within EVERY of the first line: silent
        *m.last.lock().unwrap() = Some(Instant::now() - EVERY);
        m.set(30, 0);
        m.finish(true);
        let failed = started("Failing", 0, Duration::from_secs(5));
        failed.add(1);
        failed.finish(false);
        install(None);
        let said: Vec<String> = said
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("Long") || l.starts_with("Failing"))
            .cloned()
            .collect();
        assert_eq!(said.len(), 5, "{said:?}");
        assert!(said[0].starts_with("Long: 10 B of 100 B (10%)"), "{said:?}");
        assert!(said[1].starts_with("Long: 30 B of 100 B (30%)"), "{said:?}");
        assert!(said[2].starts_with("Long: done, 30 B in 5."), "{said:?}");
        assert!(said[4].starts_with("Failing: stopped, 2 B in "), "{said:?}");
    }

    #[test]
    fn a_phase_that_waits_before_its_first_byte_is_timed_from_it() {
        let m = meter("Waiting", Unit::Bytes, 10);
        m.set(0, 10);
        assert!(m.elapsed().is_none());
        m.add(1);
        assert!(m.elapsed().unwrap() < QUIET_FOR);
    }

    #[test]
    fn a_quick_phase_says_nothing() {
        let said = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = said.clone();
        install(Some(Arc::new(move |l: &str| {
            sink.lock().unwrap().push(l.to_owned())
        })));
        let m = meter("Quick", Unit::Bytes, 10);
        m.add(5);
        m.add(5);
        m.finish(true);
        install(None);
        assert!(said.lock().unwrap().iter().all(|l| !l.starts_with("Quick")));
    }
}
