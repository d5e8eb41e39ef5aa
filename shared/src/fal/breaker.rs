//! The circuit breaker in front of FAL. Its state lives in the store, so every worker (every
//! Lambda instance) sees the same breaker: after `threshold` consecutive FAL outages it opens and
//! new submissions wait; once the cooldown has passed, a single probe is let through, and its
//! success closes the breaker again (its failure re-opens it).

use crate::ports::{Store, StoreError, read_state, update_state};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const KEY: &str = "fal-circuit-breaker";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BreakerState {
    pub consecutive_failures: u32,
    pub opened_at: Option<DateTime<Utc>>,
    /// When the current probe was let through; a probe that never reports back frees the slot
    /// after another cooldown.
    pub probe_started_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_change: Option<DateTime<Utc>>,
}

/// May a submission go to FAL now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go.
    Allowed,
    /// Half-open: go, as the one probe.
    Probe,
    /// Open: wait this long and ask again.
    Wait(Duration),
}

#[derive(Debug, Clone, Copy)]
pub struct CircuitBreaker {
    pub threshold: u32,
    pub cooldown: Duration,
}

fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

impl BreakerState {
    /// `closed`, `open` or `half_open` at `now`.
    pub fn mode(&self, cooldown: Duration, now: DateTime<Utc>) -> &'static str {
        match self.opened_at {
            None => "closed",
            Some(opened) if now < opened + span(cooldown) => "open",
            Some(_) => "half_open",
        }
    }
}

impl CircuitBreaker {
    pub async fn state(&self, store: &dyn Store) -> Result<BreakerState, StoreError> {
        read_state(store, KEY).await
    }

    pub async fn admit(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        let cooldown = span(self.cooldown);
        let (_, admission) = update_state(store, KEY, |s: &mut BreakerState| {
            let Some(opened) = s.opened_at else {
                return (false, Admission::Allowed);
            };
            if now < opened + cooldown {
                let left = (opened + cooldown - now).to_std().unwrap_or_default();
                return (false, Admission::Wait(left));
            }
            match s.probe_started_at {
                Some(probe) if now < probe + cooldown => {
                    let left = (probe + cooldown - now).to_std().unwrap_or_default();
                    (false, Admission::Wait(left))
                }
                _ => {
                    s.probe_started_at = Some(now);
                    s.last_change = Some(now);
                    (true, Admission::Probe)
                }
            }
        })
        .await?;
        Ok(admission)
    }

    /// FAL answered: the breaker closes (written only when something changes).
    pub async fn record_success(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        update_state(store, KEY, |s: &mut BreakerState| {
            if s.consecutive_failures == 0 && s.opened_at.is_none() {
                return (false, ());
            }
            if s.opened_at.is_some() {
                tracing::info!("FAL circuit breaker closed");
            }
            *s = BreakerState {
                last_change: Some(now),
                ..BreakerState::default()
            };
            (true, ())
        })
        .await
        .map(drop)
    }

    /// FAL had an outage: one more consecutive failure; at the threshold (or when a probe
    /// fails) the breaker opens.
    pub async fn record_failure(
        &self,
        store: &dyn Store,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let threshold = self.threshold;
        let (_, opened) = update_state(store, KEY, |s: &mut BreakerState| {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_error = Some(error.chars().take(300).collect());
            let probing = s.probe_started_at.is_some();
            if probing || (s.opened_at.is_none() && s.consecutive_failures >= threshold) {
                tracing::warn!(
                    failures = s.consecutive_failures,
                    error,
                    "FAL circuit breaker open"
                );
                s.opened_at = Some(now);
                s.probe_started_at = None;
                s.last_change = Some(now);
                return (true, true);
            }
            (true, false)
        })
        .await?;
        if opened {
            crate::metrics::record_breaker_opened();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::embedded::EmbeddedDb;

    #[tokio::test]
    async fn opens_after_threshold_then_lets_one_probe_through() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("db"), 5).unwrap();
        let breaker = CircuitBreaker {
            threshold: 3,
            cooldown: Duration::from_secs(60),
        };
        let t0 = Utc::now();
        for _ in 0..2 {
            breaker.record_failure(&db, "503", t0).await.unwrap();
        }
        assert_eq!(breaker.admit(&db, t0).await.unwrap(), Admission::Allowed);
        breaker.record_failure(&db, "503", t0).await.unwrap();
        assert!(matches!(
            breaker.admit(&db, t0).await.unwrap(),
            Admission::Wait(d) if d <= Duration::from_secs(60)
        ));
        assert_eq!(
            breaker.state(&db).await.unwrap().mode(breaker.cooldown, t0),
            "open"
        );

        let later = t0 + chrono::Duration::seconds(61);
        assert_eq!(breaker.admit(&db, later).await.unwrap(), Admission::Probe);
        assert!(matches!(
            breaker.admit(&db, later).await.unwrap(),
            Admission::Wait(_)
        ));
        // The probe fails: open again for a whole cooldown.
        breaker.record_failure(&db, "503", later).await.unwrap();
        assert!(matches!(
            breaker.admit(&db, later).await.unwrap(),
            Admission::Wait(_)
        ));

        let much_later = later + chrono::Duration::seconds(61);
        assert_eq!(
            breaker.admit(&db, much_later).await.unwrap(),
            Admission::Probe
        );
        breaker.record_success(&db, much_later).await.unwrap();
        assert_eq!(
            breaker.admit(&db, much_later).await.unwrap(),
            Admission::Allowed
        );
        let state = breaker.state(&db).await.unwrap();
        assert_eq!(
            (
                state.consecutive_failures,
                state.mode(breaker.cooldown, much_later)
            ),
            (0, "closed")
        );
    }

    fn setup() -> (tempfile::TempDir, EmbeddedDb, CircuitBreaker) {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("db"), 5).unwrap();
        let breaker = CircuitBreaker {
            threshold: 1,
            cooldown: Duration::from_secs(60),
        };
        (dir, db, breaker)
    }

    /// The cooldown ends exactly at `opened + cooldown`, and a probe that never reports back
    /// frees its slot exactly one cooldown after it started; waits say exactly how long.
    #[tokio::test]
    async fn cooldown_and_probe_end_exactly_on_time() {
        let (_dir, db, breaker) = setup();
        let t0 = Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        breaker.record_failure(&db, "503", t0).await.unwrap();
        let state = breaker.state(&db).await.unwrap();
        let just_before = t0 + chrono::Duration::milliseconds(59_999);
        assert_eq!(state.mode(breaker.cooldown, just_before), "open");
        assert_eq!(state.mode(breaker.cooldown, at(60)), "half_open");
        assert_eq!(
            breaker.admit(&db, at(10)).await.unwrap(),
            Admission::Wait(Duration::from_secs(50))
        );
        assert_eq!(breaker.admit(&db, at(60)).await.unwrap(), Admission::Probe);
        assert_eq!(
            breaker.admit(&db, at(70)).await.unwrap(),
            Admission::Wait(Duration::from_secs(50)),
            "the probe holds the slot"
        );
        assert_eq!(
            breaker.admit(&db, at(120)).await.unwrap(),
            Admission::Probe,
            "a probe silent for a cooldown frees the slot"
        );
    }

    /// A success closes the breaker and clears a count below the threshold, noting when; on a
    /// breaker with nothing to clear it writes nothing.
    #[tokio::test]
    async fn a_success_clears_failures_and_writes_only_a_change() {
        let (_dir, db, _) = setup();
        let breaker = CircuitBreaker {
            threshold: 3,
            cooldown: Duration::from_secs(60),
        };
        let t0 = Utc::now();
        breaker.record_success(&db, t0).await.unwrap();
        assert_eq!(breaker.state(&db).await.unwrap(), BreakerState::default());
        breaker.record_failure(&db, "503", t0).await.unwrap();
        let t1 = t0 + chrono::Duration::seconds(1);
        breaker.record_success(&db, t1).await.unwrap();
        let state = breaker.state(&db).await.unwrap();
        assert_eq!(
            (state.consecutive_failures, state.last_change),
            (0, Some(t1))
        );
    }
}
