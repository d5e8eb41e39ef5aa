//! The rate limits' arithmetic, without a store: the sliding window of a minute estimated from
//! two fixed-window counters ([`judge`]), and [`LocalCounts`], one instance's count of a
//! subject's requests between its writes to the store's shared counters (the keyless status
//! views, polled once a second by every browser following a job).
//!
//! `LocalCounts`' promise: one instance decides on the shared count it last read plus what it
//! counted itself since, and writes what it counted with the subject's next request once
//! [`SYNC_EVERY_MS`] passed or [`batch`] requests (a tenth of the limit) were counted; while
//! that write is under way, the subject's requests are counted in the store. One instance holds
//! the limit exactly; a subject spread over N instances can pass it by at most N batches, until
//! each instance's next write (what an instance counted when it stops is lost: at most a batch).

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

pub const WINDOW_SECS: i64 = 60;

/// The start (Unix seconds) of the fixed window `now` falls in.
pub fn window_start(now: DateTime<Utc>) -> i64 {
    now.timestamp() - now.timestamp().rem_euclid(WINDOW_SECS)
}

/// What the window says about one more request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// Units that would still pass now.
    pub remaining: u64,
    /// When everything counted so far has left the window: the whole budget is back.
    pub reset: DateTime<Utc>,
    /// For a refusal, how long until the same units would pass (when nothing else is counted
    /// meanwhile); 0 when allowed.
    pub retry_after_secs: u64,
}

/// The verdict on `units` more at `now`, with `current` this window's count (the units
/// included) and `previous` last window's, weighted by how much of it still lies within the last
/// 60 s: unlike a fixed window, a burst at the end of one minute and another at the start of the
/// next cannot pass twice the limit. Refused units are not counted.
pub fn judge(
    window_start: i64,
    previous: f64,
    current: f64,
    units: f64,
    limit: u64,
    now: DateTime<Utc>,
) -> Verdict {
    let window_ms = (WINDOW_SECS * 1000) as f64;
    let elapsed = ((now - DateTime::from_timestamp(window_start, 0).unwrap_or(now))
        .num_milliseconds() as f64
        / window_ms)
        .clamp(0.0, 1.0);
    let limit_f = limit as f64;
    let allowed = previous * (1.0 - elapsed) + current <= limit_f;
    let counted = if allowed {
        current
    } else {
        (current - units).max(0.0)
    };
    let estimated = previous * (1.0 - elapsed) + counted;
    // `windows_ahead` windows after this one's start.
    let at = |windows_ahead: f64| {
        let ms = (window_start as f64 * 1000.0 + windows_ahead * window_ms).ceil() as i64;
        DateTime::from_timestamp_millis(ms).unwrap_or(now)
    };
    let reset = if counted > 0.0 {
        at(2.0)
    } else if previous > 0.0 {
        at(1.0)
    } else {
        now
    };
    let retry_after_secs = if allowed {
        0
    } else {
        // Within this minute, last minute's weight fades; after it, this minute's does.
        let ready = if counted + units <= limit_f && previous > 0.0 {
            at(1.0 - (limit_f - counted - units) / previous)
        } else if units <= limit_f && counted > 0.0 {
            at(2.0 - (limit_f - units) / counted)
        } else {
            // More units than the whole budget never pass: come back when it is whole.
            reset
        };
        let wait = (ready - now).num_milliseconds().max(0) as u64;
        wait.div_ceil(1000).max(1)
    };
    Verdict {
        allowed,
        remaining: (limit_f - estimated).max(0.0).floor() as u64,
        reset,
        retry_after_secs,
    }
}

/// The longest an instance decides on a shared count it read, in milliseconds.
pub const SYNC_EVERY_MS: i64 = 10_000;

/// The subjects an instance keeps counts for; past it, new subjects count in the store alone.
pub const MAX_SUBJECTS: usize = 10_000;

/// The most requests an instance counts for a subject between two writes: a tenth of `limit`.
pub fn batch(limit: u64) -> i64 {
    i64::try_from(limit / 10).unwrap_or(i64::MAX).max(1)
}

/// One instance's counts, per subject, between writes to the store.
#[derive(Default)]
pub struct LocalCounts {
    inner: Mutex<Subjects>,
}

#[derive(Default)]
struct Subjects {
    entries: HashMap<String, Entry>,
    /// When stale entries were last dropped (milliseconds): at most once a second.
    swept_at: i64,
}

struct Entry {
    window_start: i64,
    /// When the shared counts were read (milliseconds).
    read_at: i64,
    /// The shared counts as read: this window's (this instance's writes included) and last
    /// window's.
    current: f64,
    previous: f64,
    /// Requests counted here since, in `window_start`'s window, not yet in the store.
    pending: i64,
    /// A write of this instance's count is under way: until its answer is read, requests are
    /// counted in the store (decided here on the old count, a batch could pass per write).
    writing: bool,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Decided here (an allowed request is counted here).
    Decided(Verdict),
    /// Count it in the store, writing with it `pending` requests counted here in its window
    /// (allowed already: they stay counted), and first `earlier`'s (a window, its requests)
    /// when the window turned since.
    Write {
        pending: i64,
        earlier: Option<(i64, i64)>,
    },
}

impl LocalCounts {
    fn subjects(&self) -> std::sync::MutexGuard<'_, Subjects> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request of `subject` at `now`, under `limit` a minute.
    pub fn count(&self, subject: &str, limit: u64, now: DateTime<Utc>) -> Step {
        let start = window_start(now);
        let now_ms = now.timestamp_millis();
        let mut subjects = self.subjects();
        let Some(entry) = subjects.entries.get_mut(subject) else {
            return Step::Write {
                pending: 0,
                earlier: None,
            };
        };
        if entry.writing {
            return Step::Write {
                pending: 0,
                earlier: None,
            };
        }
        if entry.window_start == start
            && now_ms.saturating_sub(entry.read_at) < SYNC_EVERY_MS
            && entry.pending < batch(limit)
        {
            let current = entry.current + entry.pending as f64 + 1.0;
            let verdict = judge(start, entry.previous, current, 1.0, limit, now);
            if verdict.allowed {
                entry.pending += 1;
            }
            return Step::Decided(verdict);
        }
        let pending = std::mem::take(&mut entry.pending);
        entry.writing = true;
        if entry.window_start == start {
            Step::Write {
                pending,
                earlier: None,
            }
        } else {
            Step::Write {
                pending: 0,
                earlier: (pending > 0).then_some((entry.window_start, pending)),
            }
        }
    }

    /// What the store said after a write at `now`: `current` (this window's count, refused
    /// units taken back) and `previous`. Answers can arrive out of order: an older window's is
    /// ignored, and within a window the higher count is kept.
    pub fn read(&self, subject: &str, current: f64, previous: f64, now: DateTime<Utc>) {
        let start = window_start(now);
        let now_ms = now.timestamp_millis();
        let mut subjects = self.subjects();
        if let Some(entry) = subjects.entries.get_mut(subject) {
            entry.writing = false;
            if start < entry.window_start {
                return;
            }
            if start == entry.window_start {
                entry.current = entry.current.max(current);
            } else {
                // Requests counted meanwhile in the earlier window are dropped: that window
                // only weighs on this one now (at most a batch, once a minute).
                entry.current = current;
                entry.pending = 0;
            }
            entry.window_start = start;
            entry.read_at = entry.read_at.max(now_ms);
            entry.previous = previous;
            return;
        }
        if subjects.entries.len() >= MAX_SUBJECTS && now_ms - subjects.swept_at >= 1000 {
            subjects.swept_at = now_ms;
            // Entries that would be read again anyway, holding nothing unwritten, go first.
            subjects.entries.retain(|_, e| {
                e.pending > 0 && e.window_start == start
                    || now_ms.saturating_sub(e.read_at) < SYNC_EVERY_MS
            });
        }
        if subjects.entries.len() < MAX_SUBJECTS {
            subjects.entries.insert(
                subject.to_owned(),
                Entry {
                    window_start: start,
                    read_at: now_ms,
                    current,
                    previous,
                    pending: 0,
                    writing: false,
                },
            );
        }
    }

    /// Takes back one request counted here (refused after all); false when there is none to
    /// take back here (it is in the store).
    pub fn uncount(&self, subject: &str) -> bool {
        match self.subjects().entries.get_mut(subject) {
            Some(entry) if entry.pending > 0 => {
                entry.pending -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(secs * 1000 + ms).unwrap()
    }

    /// The store, as the rate limit's write path uses it: one counter per window.
    #[derive(Default)]
    struct Shared(HashMap<i64, f64>, usize);

    impl Shared {
        /// The write path of `web::rate_limit` for one request, returning whether it passed.
        fn write(
            &mut self,
            local: &LocalCounts,
            subject: &str,
            limit: u64,
            now: DateTime<Utc>,
        ) -> bool {
            match local.count(subject, limit, now) {
                Step::Decided(verdict) => verdict.allowed,
                Step::Write { pending, earlier } => {
                    self.1 += 1;
                    if let Some((window, units)) = earlier {
                        *self.0.entry(window).or_default() += units as f64;
                    }
                    let start = window_start(now);
                    let current = self.0.entry(start).or_default();
                    *current += pending as f64 + 1.0;
                    let previous = self.0.get(&(start - WINDOW_SECS)).copied().unwrap_or(0.0);
                    let current_now = self.0[&start];
                    let verdict = judge(start, previous, current_now, 1.0, limit, now);
                    if !verdict.allowed {
                        *self.0.get_mut(&start).unwrap() -= 1.0;
                    }
                    local.read(subject, self.0[&start], previous, now);
                    verdict.allowed
                }
            }
        }
    }

    #[test]
    fn one_instance_holds_the_limit_exactly_with_a_write_per_batch() {
        let local = LocalCounts::default();
        let mut shared = Shared::default();
        let start = 6_000_000_000 / WINDOW_SECS * WINDOW_SECS;
        let mut passed = 0;
        for i in 0..500 {
            passed += usize::from(shared.write(&local, "ip:a", 120, at(start, i * 10)));
        }
        assert_eq!(passed, 120, "exactly the limit passes in one window");
        // A write per batch of 12 while passing; once over, refusals are decided here until
        // the counts are read again (every 10 s: the 500 requests take 5 s).
        assert!(
            shared.1 <= 120 / 12 + 2,
            "{} writes for 500 requests",
            shared.1
        );
    }

    #[test]
    fn instances_pass_the_limit_by_at_most_a_batch_each() {
        let instances: Vec<LocalCounts> = (0..4).map(|_| LocalCounts::default()).collect();
        let mut shared = Shared::default();
        let start = 6_000_000_000 / WINDOW_SECS * WINDOW_SECS;
        let mut passed = 0;
        for i in 0..2000 {
            let local = &instances[i % instances.len()];
            passed += usize::from(shared.write(local, "ip:a", 120, at(start, i as i64)));
        }
        assert!(passed >= 120, "{passed}");
        assert!(passed <= 120 + 4 * batch(120) as usize, "{passed}");
    }

    #[test]
    fn a_turned_window_writes_what_the_last_one_counted_here() {
        let local = LocalCounts::default();
        let mut shared = Shared::default();
        let start = 6_000_000_000 / WINDOW_SECS * WINDOW_SECS;
        for i in 0..5 {
            assert!(shared.write(&local, "ip:a", 120, at(start + 50, i)));
        }
        // Four were counted here, unwritten; the next window writes them into the last.
        assert_eq!(shared.0[&start], 1.0);
        assert!(shared.write(&local, "ip:a", 120, at(start + WINDOW_SECS, 0)));
        assert_eq!(shared.0[&start], 5.0);
        assert_eq!(shared.0[&(start + WINDOW_SECS)], 1.0);
    }

    /// While one write is under way, nothing more is decided on the old count, and a late
    /// answer neither lowers the count nor moves the window back.
    #[test]
    fn during_a_write_requests_go_to_the_store_and_late_answers_change_nothing() {
        let local = LocalCounts::default();
        let start = 6_000_000_000 / WINDOW_SECS * WINDOW_SECS;
        let now = at(start, 0);
        local.read("ip:a", 100.0, 0.0, now);
        for _ in 0..batch(120) {
            assert!(matches!(local.count("ip:a", 120, now), Step::Decided(v) if v.allowed));
        }
        assert_eq!(
            local.count("ip:a", 120, now),
            Step::Write {
                pending: 12,
                earlier: None
            }
        );
        for _ in 0..50 {
            assert_eq!(
                local.count("ip:a", 120, now),
                Step::Write {
                    pending: 0,
                    earlier: None
                }
            );
        }
        local.read("ip:a", 120.0, 0.0, now);
        local.read("ip:a", 113.0, 0.0, now);
        local.read("ip:a", 5.0, 0.0, at(start - WINDOW_SECS, 0));
        assert!(matches!(local.count("ip:a", 120, now), Step::Decided(v) if !v.allowed));
    }

    #[test]
    fn counts_are_read_again_after_the_sync_interval() {
        let local = LocalCounts::default();
        let now = at(6_000_000_000 / WINDOW_SECS * WINDOW_SECS, 0);
        local.read("ip:a", 1.0, 0.0, now);
        assert!(matches!(local.count("ip:a", 120, now), Step::Decided(v) if v.allowed));
        let later = now + chrono::Duration::milliseconds(SYNC_EVERY_MS);
        assert_eq!(
            local.count("ip:a", 120, later),
            Step::Write {
                pending: 1,
                earlier: None
            }
        );
    }

    #[test]
    fn the_subjects_kept_are_bounded() {
        let local = LocalCounts::default();
        let now = at(6_000_000_000 / WINDOW_SECS * WINDOW_SECS, 0);
        for i in 0..MAX_SUBJECTS + 10 {
            local.read(&format!("ip:{i}"), 1.0, 0.0, now);
        }
        assert_eq!(local.subjects().entries.len(), MAX_SUBJECTS);
        // Once their reads are stale, they make room.
        let later = now + chrono::Duration::milliseconds(SYNC_EVERY_MS + 1);
        local.read("ip:new", 1.0, 0.0, later);
        assert_eq!(local.subjects().entries.len(), 1);
    }
}
