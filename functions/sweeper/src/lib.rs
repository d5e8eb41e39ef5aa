//! The sweeper function, run on a schedule (EventBridge): one sweep (overdue jobs failed, lost
//! messages re-sent, missed uploads ingested) and one cleanup of what is older than the
//! retention. The local server runs the same maintenance on a timer.

use chrono::Utc;
use image2model_admin::{CleanupReport, MaintenanceError, SweepReport, cleanup, sweep};
use image2model_shared::AppContext;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub sweep: SweepReport,
    pub cleanup: CleanupReport,
}

/// Runs one round of maintenance. The scheduled event's content does not matter.
pub async fn run(ctx: &AppContext) -> Result<Report, MaintenanceError> {
    let now = Utc::now();
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
    Ok(Report { sweep, cleanup })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image2model_shared::config::Config;
    use image2model_shared::context::EmbeddedAdapters;

    #[tokio::test]
    async fn an_empty_deployment_has_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let adapters = EmbeddedAdapters::open(&config, "http://127.0.0.1:1").unwrap();
        let report = run(&AppContext::embedded(config, &adapters)).await.unwrap();
        assert!(report.sweep.requeued.is_empty() && report.cleanup.jobs.is_empty());
        assert!(!report.cleanup.dry_run);
    }
}
