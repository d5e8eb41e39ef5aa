//! One round of maintenance, as the scheduled sweeper runs it: a sweep, then a cleanup of what is
//! older than the retention. The local server runs the same two steps on timers.

use super::cleanup::{CleanupPass, CleanupReport, cleanup};
use super::error::AppError;
use super::sweep::{SweepReport, sweep};
use crate::context::AppContext;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// The cleanup's share of a round: the sweeper's Lambda has 300 s, the sweep comes first, and
/// what is left waits for the next round.
const CLEANUP_BUDGET: Duration = Duration::from_secs(150);

#[derive(Debug, Serialize)]
pub struct MaintenanceReport {
    pub sweep: SweepReport,
    pub cleanup: CleanupReport,
}

pub async fn run_maintenance(
    ctx: &AppContext,
    now: DateTime<Utc>,
) -> Result<MaintenanceReport, AppError> {
    let sweep = sweep(ctx, now).await?;
    let pass = CleanupPass {
        older_than: ctx.config.jobs.retention,
        dry_run: false,
        budget: CLEANUP_BUDGET,
    };
    let cleanup = cleanup(ctx, pass, now).await?;
    tracing::info!(
        requeued = sweep.requeued.len(),
        timed_out = sweep.timed_out.len(),
        ingested = sweep.ingested.len(),
        deleted_jobs = cleanup.jobs.len(),
        deleted_files = cleanup.files.len(),
        "maintenance done"
    );
    Ok(MaintenanceReport { sweep, cleanup })
}
