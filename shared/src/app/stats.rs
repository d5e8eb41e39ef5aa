//! Figures of the deployment that `/health/detailed` and `/admin/stats` both show: jobs by
//! status, and FAL's circuit breaker and slots.

use crate::context::AppContext;
use crate::domain::JobStatus;
use crate::fal::guard;
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// What `/health/detailed` and `/admin/stats` show about FAL.
#[derive(Debug, Clone, Serialize)]
pub struct FalOverview {
    pub configured: bool,
    pub webhooks: bool,
    pub circuit_breaker: BreakerView,
    pub in_flight: usize,
    pub max_in_flight: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct BreakerView {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    pub consecutive_failures: u32,
    pub threshold: u32,
    pub opened_at: Option<DateTime<Utc>>,
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

/// Jobs by status (every status, zero included) and their total.
pub async fn job_counts(
    ctx: &AppContext,
) -> Result<(BTreeMap<&'static str, u64>, u64), StoreError> {
    let counts = ctx.store.count_jobs_by_status().await?;
    let total = counts.values().sum();
    let by_status = counts
        .into_iter()
        .map(|(status, n): (JobStatus, u64)| (status.as_str(), n))
        .collect();
    Ok((by_status, total))
}
