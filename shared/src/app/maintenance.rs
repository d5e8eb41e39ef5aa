//! One round of maintenance, as the scheduled sweeper runs it: a sweep, then a cleanup of what is
//! older than the retention. The local server runs the same two steps on timers.

use super::cleanup::{CleanupReport, cleanup};
use super::error::AppError;
use super::sweep::{SweepReport, sweep};
use crate::context::AppContext;
use chrono::{DateTime, Utc};
use serde::Serialize;

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
    let cleanup = cleanup(ctx, ctx.config.retention, false, now).await?;
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
