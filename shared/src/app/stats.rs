//! Figures of the deployment that `/health/detailed`, `/health/metrics` and `/admin/stats` show:
//! jobs by status (counted at most every [`JOB_COUNTS_MAX_AGE`], cached in the store), and FAL's
//! circuit breaker and slots.

use crate::context::AppContext;
use crate::domain::JobStatus;
use crate::fal::guard;
use crate::ports::StoreError;
use crate::ports::update_state;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What `/health/detailed` and `/admin/stats` show about FAL.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FalOverview {
    pub configured: bool,
    pub webhooks: bool,
    pub circuit_breaker: BreakerView,
    pub in_flight: usize,
    pub max_in_flight: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BreakerView {
    /// `closed`, `open` or `half_open`.
    #[schema(value_type = String, pattern = "^(closed|open|half_open)$")]
    pub state: &'static str,
    pub consecutive_failures: u32,
    pub threshold: u32,
    #[schema(required = true)]
    pub opened_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_error: Option<String>,
}

pub async fn fal_overview(ctx: &AppContext, now: DateTime<Utc>) -> Result<FalOverview, StoreError> {
    let settings = &ctx.config.fal;
    let breaker = settings.breaker();
    let state = breaker.state(ctx.store.as_ref()).await?;
    Ok(FalOverview {
        configured: ctx.config.fal_configured(),
        webhooks: settings.webhook_url.is_some(),
        circuit_breaker: BreakerView {
            state: state.mode(breaker.cooldown, now),
            consecutive_failures: state.consecutive_failures,
            threshold: breaker.threshold,
            opened_at: state.opened_at,
            last_error: state.last_error,
        },
        in_flight: guard::slots_in_use(ctx.store.as_ref()).await?,
        max_in_flight: settings.max_in_flight,
    })
}

/// How old the job counts that health, metrics and stats show may be. Counting reads every
/// job, so it happens at most this often per deployment, however many callers (anonymous ones
/// included) ask: each answer is otherwise one read of a state document.
pub const JOB_COUNTS_MAX_AGE: chrono::Duration = chrono::Duration::seconds(30);

const JOB_COUNTS_KEY: &str = "job-counts";

#[derive(Debug, Default, Serialize, Deserialize)]
struct CachedCounts {
    counts: BTreeMap<String, u64>,
    counted_at: Option<DateTime<Utc>>,
    /// When a caller took the recount on itself (so concurrent callers do not count too).
    claimed_at: Option<DateTime<Utc>>,
}

/// Jobs by status (every status, zero included) and their total, at most
/// [`JOB_COUNTS_MAX_AGE`] old.
pub async fn job_counts(
    ctx: &AppContext,
) -> Result<(BTreeMap<&'static str, u64>, u64), StoreError> {
    let now = Utc::now();
    let recent = |at: Option<DateTime<Utc>>| at.is_some_and(|at| now - at < JOB_COUNTS_MAX_AGE);
    let (cached, claimed) = update_state(
        ctx.store.as_ref(),
        JOB_COUNTS_KEY,
        |c: &mut CachedCounts| {
            if recent(c.counted_at) || recent(c.claimed_at) {
                (false, false)
            } else {
                c.claimed_at = Some(now);
                (true, true)
            }
        },
    )
    .await?;
    let counts: BTreeMap<JobStatus, u64> = if claimed {
        let counted = ctx.store.count_jobs_by_status().await?;
        let stored: BTreeMap<String, u64> = counted
            .iter()
            .map(|(status, n)| (status.as_str().to_owned(), *n))
            .collect();
        update_state(
            ctx.store.as_ref(),
            JOB_COUNTS_KEY,
            |c: &mut CachedCounts| {
                c.counts = stored.clone();
                c.counted_at = Some(now);
                (true, ())
            },
        )
        .await?;
        counted
    } else {
        JobStatus::ALL
            .into_iter()
            .map(|s| (s, cached.counts.get(s.as_str()).copied().unwrap_or(0)))
            .collect()
    };
    let total = counts.values().sum();
    let by_status = JobStatus::ALL
        .into_iter()
        .map(|s| (s.as_str(), counts.get(&s).copied().unwrap_or(0)))
        .collect();
    Ok((by_status, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{context, queued_job, ready_file};
    use crate::domain::models::RELIEF_MODEL;

    /// However many callers ask, jobs are counted once per [`JOB_COUNTS_MAX_AGE`]: a job made
    /// meanwhile shows once the figure is that old.
    #[tokio::test]
    async fn jobs_are_counted_at_most_once_per_max_age() {
        let t = context();
        let file = ready_file(&t, "alice").await;
        queued_job(&t, &file, RELIEF_MODEL).await;
        let (by_status, total) = job_counts(&t).await.unwrap();
        assert_eq!((by_status["queued"], total), (1, 1));
        assert_eq!(
            by_status.len(),
            JobStatus::ALL.len(),
            "every status, zero included"
        );
        queued_job(&t, &file, RELIEF_MODEL).await;
        for _ in 0..5 {
            assert_eq!(job_counts(&t).await.unwrap().1, 1, "the cached figure");
        }
        // The figure ages past the limit: the next caller counts again.
        update_state(t.store.as_ref(), JOB_COUNTS_KEY, |c: &mut CachedCounts| {
            c.counted_at = Some(Utc::now() - JOB_COUNTS_MAX_AGE - chrono::Duration::seconds(1));
            c.claimed_at = c.counted_at;
            (true, ())
        })
        .await
        .unwrap();
        assert_eq!(job_counts(&t).await.unwrap().1, 2);
    }

    /// Sets the cached figure: `queued` jobs, counted and claimed `counted` and `claimed`
    /// seconds ago.
    async fn cache(t: &AppContext, queued: u64, counted: Option<i64>, claimed: Option<i64>) {
        let ago = |s: i64| Utc::now() - chrono::Duration::seconds(s);
        update_state(t.store.as_ref(), JOB_COUNTS_KEY, |c: &mut CachedCounts| {
            c.counts = BTreeMap::from([("queued".to_owned(), queued)]);
            c.counted_at = counted.map(ago);
            c.claimed_at = claimed.map(ago);
            (true, ())
        })
        .await
        .unwrap();
    }

    /// A figure being recounted by another caller is answered from the cache (however old), and
    /// so is a fresh figure whose count was claimed long ago: only a figure both old and
    /// unclaimed is counted again.
    #[tokio::test]
    async fn a_recount_under_way_or_just_done_is_not_repeated() {
        let t = context();
        queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        for (counted, claimed) in [(None, Some(1)), (Some(600), Some(1)), (Some(1), Some(600))] {
            cache(&t, 7, counted, claimed).await;
            assert_eq!(
                job_counts(&t).await.unwrap().1,
                7,
                "counted {counted:?} s ago, claimed {claimed:?} s ago"
            );
        }
        cache(&t, 7, Some(600), Some(600)).await;
        assert_eq!(job_counts(&t).await.unwrap().1, 1);
    }
}
