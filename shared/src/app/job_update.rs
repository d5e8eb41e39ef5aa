//! Every change of a job goes through [`update_job`]: read, let the state machine compute the
//! next version, write it conditionally on the version read, start over when another writer won.
//! A job that ends here (completed, failed, cancelled) is announced to its owner's webhooks. A
//! completed job changes only by [`record_format`], which names a format made since.

use super::error::AppError;
use super::webhook_events::announce_job_end;
use crate::context::AppContext;
use crate::domain::{Converted, GenerationJob, JobError, JobId, TransitionError};
use crate::ports::{Store, StoreError};

/// Tries before giving up with [`AppError::Conflict`].
const MAX_TRIES: usize = 8;

/// Reads the job, asks `change` for its next version and writes it conditionally, starting over
/// when another writer got there first. `change` returns `Ok(None)` when there is nothing to do;
/// the job as stored is then returned unchanged. The write that ends the job announces it.
pub async fn update_job<F>(
    ctx: &AppContext,
    id: JobId,
    mut change: F,
) -> Result<GenerationJob, AppError>
where
    F: FnMut(&GenerationJob) -> Result<Option<GenerationJob>, TransitionError>,
{
    let store = ctx.store.as_ref();
    for _ in 0..MAX_TRIES {
        let current = store.get_job(id).await?.ok_or(AppError::JobNotFound(id))?;
        let Some(next) = change(&current)? else {
            return Ok(current);
        };
        match store.update_job(&next).await {
            Ok(()) => {
                if !current.status.is_terminal() && next.status.is_terminal() {
                    announce_job_end(ctx, &next).await;
                }
                return Ok(next);
            }
            Err(StoreError::Conflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(AppError::Conflict)
}

/// Names `converted` (a format made after completion, or found unmakeable) in the completed
/// job's result, so that its view says `ready` (or `failed`) as the download does. Nothing to do
/// for a job that is gone, not completed, or names it already.
pub async fn record_format(
    store: &dyn Store,
    id: JobId,
    converted: &Converted,
) -> Result<(), AppError> {
    for _ in 0..MAX_TRIES {
        let Some(job) = store.get_job(id).await? else {
            return Ok(());
        };
        let Some(next) = job.with_format(converted, chrono::Utc::now()) else {
            return Ok(());
        };
        match store.amend_completed_job(&next).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(AppError::Conflict)
}

/// Fails a job with `error` unless it already ended; returns the job as stored afterwards.
pub async fn fail_job(
    ctx: &AppContext,
    id: JobId,
    error: &JobError,
) -> Result<GenerationJob, AppError> {
    let now = chrono::Utc::now();
    let mut failed_here = false;
    let job = update_job(ctx, id, |job| {
        failed_here = !job.status.is_terminal();
        if failed_here {
            job.fail(error.clone(), now).map(Some)
        } else {
            Ok(None)
        }
    })
    .await?;
    if failed_here {
        crate::metrics::record_job_end(&job.model_type, false);
    }
    Ok(job)
}
