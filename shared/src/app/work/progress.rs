//! Progress of a running job: written to the job as it only moves forward, noticing when the job
//! was settled elsewhere meanwhile (its owner cancelled it).

use crate::app::error::AppError;
use crate::app::job_update::update_job;
use crate::context::AppContext;
use crate::domain::GenerationJob;
use crate::ports::ProgressReporter;
use chrono::Utc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Writes progress to the job, and notices when the job was settled elsewhere (cancelled).
pub(super) struct JobProgress<'a> {
    ctx: &'a AppContext,
    job: &'a GenerationJob,
    settled: AtomicBool,
}

impl<'a> JobProgress<'a> {
    pub(super) fn new(ctx: &'a AppContext, job: &'a GenerationJob) -> Self {
        Self {
            ctx,
            job,
            settled: AtomicBool::new(false),
        }
    }

    /// Whether the job ended (or vanished) while it was reported on.
    pub(super) fn settled(&self) -> bool {
        self.settled.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ProgressReporter for JobProgress<'_> {
    async fn report(&self, progress: u8, message: &str) {
        let now = Utc::now();
        let result = update_job(self.ctx, self.job.job_id, |job| {
            if job.progress > progress {
                Ok(None)
            } else {
                job.report_progress(progress, message, now).map(Some)
            }
        })
        .await;
        match result {
            Ok(job) if job.status.is_terminal() => self.settled.store(true, Ordering::SeqCst),
            Ok(_) => {}
            Err(AppError::Transition(_) | AppError::JobNotFound(_)) => {
                self.settled.store(true, Ordering::SeqCst)
            }
            Err(err) => {
                tracing::warn!(job_id = %self.job.job_id, error = %err, "progress not recorded")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{context, queued_job, ready_file, stored};
    use crate::domain::JobStatus;
    use crate::domain::models::RELIEF_MODEL;

    #[tokio::test]
    async fn progress_only_moves_forward_and_a_job_that_ended_meanwhile_settles_the_run() {
        let t = context();
        let job = queued_job(&t, &ready_file(&t, "alice").await, RELIEF_MODEL).await;
        let running = job.start(Utc::now()).unwrap();
        t.store.update_job(&running).await.unwrap();
        let progress = JobProgress::new(&t, &running);
        progress.report(60, "meshing").await;
        // The same figure with news is recorded; a lower one is not (reports may overtake).
        progress.report(60, "texturing").await;
        progress.report(50, "late").await;
        let seen = stored(&t, &job).await;
        assert_eq!((seen.progress, seen.message.as_str()), (60, "texturing"));
        assert!(!progress.settled());
        // Its owner cancels it; the next report (however low) finds it ended.
        let current = stored(&t, &job).await;
        t.store
            .update_job(&current.cancel(Utc::now()).unwrap())
            .await
            .unwrap();
        progress.report(10, "still going").await;
        assert!(progress.settled());
        assert_eq!(stored(&t, &job).await.status, JobStatus::Cancelled);
    }
}
