//! The cost guard: a global cap on jobs in flight at FAL (slots in one store document, so the
//! cap holds across every worker), per-key daily quotas checked at job creation, and the daily
//! count of FAL runs per model that `/admin/stats` turns into an estimated spend.

use crate::domain::models::CATALOG;
use crate::domain::{JobId, JobStatus};
use crate::ports::{Store, StoreError, read_state, update_state};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

const SLOTS_KEY: &str = "fal-in-flight";
/// A queued job holding a slot gets this long to be claimed before its slot counts as free.
const CLAIM_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Daily counters are kept this many days.
const KEEP_DAYS: u64 = 8;

/// Jobs holding a slot, with when they took it.
pub type Slots = BTreeMap<JobId, DateTime<Utc>>;

fn end_of_day(day: NaiveDate, keep_days: u64) -> DateTime<Utc> {
    day.checked_add_days(Days::new(keep_days))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or_else(Utc::now, |d| d.and_utc())
}

/// Frees the slots of `ended` holders, then takes one for `job_id` if there is room. Answers
/// whether it changed anything, and `Err(holders)` when every slot is taken.
fn take_slot(
    slots: &mut Slots,
    job_id: JobId,
    cap: usize,
    now: DateTime<Utc>,
    ended: &[JobId],
) -> (bool, Result<(), Slots>) {
    if slots.contains_key(&job_id) {
        return (false, Ok(()));
    }
    let freed = ended.iter().filter(|id| slots.remove(id).is_some()).count();
    if slots.len() >= cap {
        return (freed > 0, Err(slots.clone()));
    }
    slots.insert(job_id, now);
    (true, Ok(()))
}

/// Takes a slot for `job_id` (keeping the one it already holds). When all slots are taken,
/// slots of jobs that ended (or vanished) are freed first; `false` when none is left.
pub async fn acquire_slot(
    store: &dyn Store,
    job_id: JobId,
    cap: u32,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let cap = cap as usize;
    let (_, taken) = update_state(store, SLOTS_KEY, |slots: &mut Slots| {
        take_slot(slots, job_id, cap, now, &[])
    })
    .await?;
    let Err(holders) = taken else {
        return Ok(true);
    };
    // Full: look for holders whose job ended (or vanished) and try once more without them.
    let mut ended = Vec::new();
    for (holder, taken_at) in holders {
        let live = match store.get_job(holder).await? {
            Some(job) if job.status == JobStatus::Processing => true,
            // Taken a moment ago, about to be claimed.
            Some(job) if job.status == JobStatus::Queued => now - taken_at < CLAIM_GRACE,
            _ => false,
        };
        if !live {
            ended.push(holder);
        }
    }
    if ended.is_empty() {
        return Ok(false);
    }
    let (_, taken) = update_state(store, SLOTS_KEY, |slots: &mut Slots| {
        take_slot(slots, job_id, cap, now, &ended)
    })
    .await?;
    Ok(taken.is_ok())
}

/// Gives back the slot of `job_id`, if it holds one.
pub async fn release_slot(store: &dyn Store, job_id: JobId) -> Result<(), StoreError> {
    update_state(store, SLOTS_KEY, |slots: &mut Slots| {
        (slots.remove(&job_id).is_some(), ())
    })
    .await
    .map(drop)
}

pub async fn slots_in_use(store: &dyn Store) -> Result<usize, StoreError> {
    Ok(read_state::<Slots>(store, SLOTS_KEY).await?.len())
}

fn runs_key(day: NaiveDate, model: &str) -> String {
    format!("fal-runs:{day}:{model}")
}

fn quota_key(owner: &str, day: NaiveDate) -> String {
    format!("quota:{owner}:{day}")
}

/// Counts one FAL run of `model` today.
pub async fn record_run(
    store: &dyn Store,
    model: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let day = now.date_naive();
    store
        .add_to_counter(&runs_key(day, model), 1, end_of_day(day, KEEP_DAYS))
        .await
        .map(drop)
}

/// Takes `count` jobs from the daily quota of `owner`; `Err(used)` (and nothing taken) when
/// that would exceed `quota`.
pub async fn take_quota(
    store: &dyn Store,
    owner: &str,
    count: u64,
    quota: u64,
    now: DateTime<Utc>,
) -> Result<Result<u64, u64>, StoreError> {
    let day = now.date_naive();
    let key = quota_key(owner, day);
    let delta = i64::try_from(count).unwrap_or(i64::MAX);
    let used = store
        .add_to_counter(&key, delta, end_of_day(day, 1))
        .await?;
    if used.max(0) as u64 > quota {
        let before = store
            .add_to_counter(&key, -delta, end_of_day(day, 1))
            .await?;
        return Ok(Err(before.max(0) as u64));
    }
    Ok(Ok(used.max(0) as u64))
}

/// Gives back jobs taken from today's quota (their creation did not happen after all).
pub async fn refund_quota(
    store: &dyn Store,
    owner: &str,
    count: u64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let day = now.date_naive();
    let delta = i64::try_from(count).unwrap_or(i64::MAX);
    store
        .add_to_counter(&quota_key(owner, day), -delta, end_of_day(day, 1))
        .await
        .map(drop)
}

/// FAL runs and their estimated cost on one day.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DailySpend {
    pub date: NaiveDate,
    pub runs: BTreeMap<&'static str, u64>,
    pub estimated_usd: f64,
}

/// Runs per model and estimated spend (catalog prices) for the last `days` days, today first.
pub async fn daily_spend(
    store: &dyn Store,
    days: u64,
    now: DateTime<Utc>,
) -> Result<Vec<DailySpend>, StoreError> {
    let mut out = Vec::new();
    for back in 0..days.min(KEEP_DAYS) {
        let Some(date) = now.date_naive().checked_sub_days(Days::new(back)) else {
            break;
        };
        let mut runs = BTreeMap::new();
        let mut estimated_usd = 0.0;
        for model in CATALOG {
            let n = store.get_counter(&runs_key(date, model.id)).await?.max(0) as u64;
            if n > 0 {
                runs.insert(model.id, n);
                estimated_usd += n as f64 * model.price_per_run_usd;
            }
        }
        out.push(DailySpend {
            date,
            runs,
            estimated_usd: (estimated_usd * 100.0).round() / 100.0,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::embedded::EmbeddedDb;

    #[tokio::test]
    async fn quota_refuses_beyond_the_limit_without_taking_anything() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("db"), 5).unwrap();
        let now = Utc::now();
        assert_eq!(take_quota(&db, "alice", 2, 3, now).await.unwrap(), Ok(2));
        assert_eq!(take_quota(&db, "alice", 2, 3, now).await.unwrap(), Err(2));
        assert_eq!(take_quota(&db, "alice", 1, 3, now).await.unwrap(), Ok(3));
        assert_eq!(take_quota(&db, "bob", 3, 3, now).await.unwrap(), Ok(3));
        refund_quota(&db, "alice", 1, now).await.unwrap();
        assert_eq!(take_quota(&db, "alice", 1, 3, now).await.unwrap(), Ok(3));
    }

    #[tokio::test]
    async fn slots_cap_jobs_and_come_back_from_ended_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("db"), 5).unwrap();
        let now = Utc::now();
        let running = crate::domain::GenerationJob::new(
            crate::domain::FileId::new(),
            "alice",
            "tripo3d",
            crate::domain::JobOptions::default(),
            None,
            now,
        );
        db.create_jobs(std::slice::from_ref(&running), None, None)
            .await
            .unwrap();
        let running = running.start(now).unwrap();
        db.update_job(&running).await.unwrap();
        assert!(acquire_slot(&db, running.job_id, 1, now).await.unwrap());
        assert!(
            acquire_slot(&db, running.job_id, 1, now).await.unwrap(),
            "held already"
        );
        let other = JobId::new();
        assert!(
            !acquire_slot(&db, other, 1, now).await.unwrap(),
            "the cap holds"
        );
        // The holder ends (without giving its slot back): the slot is reclaimed.
        let failed = running
            .fail(
                crate::domain::JobError::from(crate::domain::JobErrorCode::GenerationFailed),
                now,
            )
            .unwrap();
        db.update_job(&failed).await.unwrap();
        assert!(acquire_slot(&db, other, 1, now).await.unwrap());
        assert_eq!(slots_in_use(&db).await.unwrap(), 1);
        release_slot(&db, other).await.unwrap();
        assert_eq!(slots_in_use(&db).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn spend_is_priced_from_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("db"), 5).unwrap();
        let now = Utc::now();
        for _ in 0..3 {
            record_run(&db, "tripo3d", now).await.unwrap();
        }
        record_run(&db, "trellis", now).await.unwrap();
        let spend = daily_spend(&db, 2, now).await.unwrap();
        assert_eq!(spend.len(), 2);
        assert_eq!(spend[0].runs.get("tripo3d"), Some(&3));
        assert!((spend[0].estimated_usd - 0.92).abs() < 1e-9);
        assert!(spend[1].runs.is_empty());
    }

    /// Freeing the slots of ended jobs is written even when no slot is left after it (a cap
    /// lowered below the holders); a full set with nothing freed writes nothing.
    #[test]
    fn a_full_set_writes_only_what_it_freed() {
        let (a, b, c) = (JobId::new(), JobId::new(), JobId::new());
        let now = Utc::now();
        let mut slots = Slots::from([(a, now), (b, now)]);
        assert_eq!(
            take_slot(&mut slots, c, 2, now, &[]),
            (false, Err(slots.clone()))
        );
        let (changed, taken) = take_slot(&mut slots, c, 1, now, &[a]);
        assert!(
            changed && taken.is_err(),
            "a freed, b still over the cap of 1"
        );
        assert_eq!(slots, Slots::from([(b, now)]));
    }

    /// A slot taken for a queued job is kept for the claim grace (60 s), and no longer.
    #[tokio::test]
    async fn a_queued_holder_keeps_its_slot_for_the_claim_grace_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("db"), 5).unwrap();
        let t0 = Utc::now();
        let queued = crate::domain::GenerationJob::new(
            crate::domain::FileId::new(),
            "alice",
            "tripo3d",
            crate::domain::JobOptions::default(),
            None,
            t0,
        );
        db.create_jobs(std::slice::from_ref(&queued), None, None)
            .await
            .unwrap();
        assert!(acquire_slot(&db, queued.job_id, 1, t0).await.unwrap());
        let other = JobId::new();
        let just_before = t0 + CLAIM_GRACE - chrono::TimeDelta::milliseconds(1);
        assert!(!acquire_slot(&db, other, 1, t0).await.unwrap());
        assert!(!acquire_slot(&db, other, 1, just_before).await.unwrap());
        assert!(
            acquire_slot(&db, other, 1, t0 + CLAIM_GRACE).await.unwrap(),
            "a queued holder past the grace was never claimed: its slot is freed"
        );
    }
}
