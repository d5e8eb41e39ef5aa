//! Downloads: short-lived signed URLs of a caller's generated models, for one job or for every
//! completed job of a task.

use super::access::{owned_job, owned_task};
use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{GenerationJob, JobId, JobResult, JobStatus};
use crate::keys::Caller;
use crate::ports::PresignedRequest;
use crate::validation::filename::check_result_name;

/// A signed download of one job's model, and of its preview when it has one.
#[derive(Debug, Clone)]
pub struct Download {
    pub job: GenerationJob,
    pub result: JobResult,
    pub signed: PresignedRequest,
    pub preview: Option<Preview>,
}

/// A signed download of a model's preview image.
#[derive(Debug, Clone)]
pub struct Preview {
    pub signed: PresignedRequest,
    pub size: u64,
    pub content_type: String,
}

fn completed_result(job: &GenerationJob) -> Result<JobResult, AppError> {
    match (&job.status, &job.result) {
        (JobStatus::Completed, Some(result)) => Ok(result.clone()),
        _ => Err(AppError::ResultNotReady {
            job_id: job.job_id,
            status: job.status.as_str(),
        }),
    }
}

async fn sign(ctx: &AppContext, job: GenerationJob) -> Result<Download, AppError> {
    let result = completed_result(&job)?;
    let signed = ctx
        .storage
        .presign_get(
            &result.object_key,
            &result.filename,
            ctx.config.download_expiry,
        )
        .await?;
    let preview = match &result.preview_key {
        Some(key) => match ctx.storage.head(key).await? {
            Some(meta) => {
                let stem = result
                    .filename
                    .rsplit_once('.')
                    .map_or(result.filename.as_str(), |(stem, _)| stem);
                let extension = key.rsplit_once('.').map_or("png", |(_, e)| e);
                let name = format!("{stem}-preview.{extension}");
                Some(Preview {
                    signed: ctx
                        .storage
                        .presign_get(key, &name, ctx.config.download_expiry)
                        .await?,
                    size: meta.size,
                    content_type: meta.content_type,
                })
            }
            None => None,
        },
        None => None,
    };
    Ok(Download {
        job,
        result,
        signed,
        preview,
    })
}

/// The model of the caller's job `id`; `RESULT_NOT_READY` until it completed.
pub async fn download_job(
    ctx: &AppContext,
    caller: &Caller,
    id: JobId,
) -> Result<Download, AppError> {
    sign(ctx, owned_job(ctx, caller, id).await?).await
}

/// Every completed model of the caller's task (a job or a batch); `RESULT_NOT_READY` while
/// none has completed.
pub async fn download_task(
    ctx: &AppContext,
    caller: &Caller,
    id: JobId,
) -> Result<Vec<Download>, AppError> {
    let jobs = owned_task(ctx, caller, id).await?.into_jobs();
    let status = jobs.first().map_or("queued", |j| j.status.as_str());
    let mut downloads = Vec::new();
    for job in jobs {
        if job.status == JobStatus::Completed && job.result.is_some() {
            downloads.push(sign(ctx, job).await?);
        }
    }
    if downloads.is_empty() {
        return Err(AppError::ResultNotReady { job_id: id, status });
    }
    Ok(downloads)
}

/// The caller's result file `filename` of task `id` (a job or a batch), by the old API's
/// per-file route: the name is checked by its rules first, then looked up among the task's
/// completed models.
pub async fn download_named(
    ctx: &AppContext,
    caller: &Caller,
    id: JobId,
    filename: &str,
) -> Result<Download, AppError> {
    check_result_name(filename).map_err(AppError::InvalidFilename)?;
    let job = owned_task(ctx, caller, id)
        .await?
        .into_jobs()
        .into_iter()
        .find(|j| {
            j.status == JobStatus::Completed
                && j.result.as_ref().is_some_and(|r| r.filename == filename)
        })
        .ok_or_else(|| AppError::ResultFileNotFound {
            task_id: id,
            filename: filename.to_owned(),
        })?;
    sign(ctx, job).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{batch_of_two, caller, completed, context};

    #[tokio::test]
    async fn models_are_signed_once_completed_and_only_for_their_owner() {
        let t = context();
        let (_, batch, jobs) = batch_of_two(&t, "alice").await;
        let task = JobId::from_uuid(batch.batch_id.as_uuid());
        let alice = caller("alice");
        let err = download_job(&t, &alice, jobs[0].job_id).await.unwrap_err();
        assert!(
            matches!(
                err,
                AppError::ResultNotReady {
                    status: "queued",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            download_task(&t, &alice, task).await,
            Err(AppError::ResultNotReady { .. })
        ));

        completed(&t, &jobs[0]).await;
        let one = download_job(&t, &alice, jobs[0].job_id).await.unwrap();
        assert_eq!(one.result.filename, "photo.glb");
        assert!(
            one.signed.url.contains("download_name=photo.glb"),
            "{}",
            one.signed.url
        );
        let all = download_task(&t, &alice, task).await.unwrap();
        assert_eq!(
            all.iter().map(|d| d.job.job_id).collect::<Vec<_>>(),
            [jobs[0].job_id]
        );
        assert!(matches!(
            download_job(&t, &caller("bob"), jobs[0].job_id).await,
            Err(AppError::JobNotFound(_))
        ));
        assert!(matches!(
            download_task(&t, &caller("bob"), task).await,
            Err(AppError::JobNotFound(_))
        ));

        // By name, as the old per-file route asks: the batch's or the job's id.
        for id in [task, jobs[0].job_id] {
            let named = download_named(&t, &alice, id, "photo.glb").await.unwrap();
            assert_eq!(named.job.job_id, jobs[0].job_id);
        }
        for (name, refused) in [
            ("../photo.glb", "invalid"),
            ("photo.png", "invalid"),
            ("other.glb", "missing"),
        ] {
            let err = download_named(&t, &alice, task, name).await.unwrap_err();
            match refused {
                "invalid" => assert!(matches!(err, AppError::InvalidFilename(_)), "{err:?}"),
                _ => assert!(
                    matches!(err, AppError::ResultFileNotFound { .. }),
                    "{err:?}"
                ),
            }
        }
        assert!(matches!(
            download_named(&t, &caller("bob"), task, "photo.glb").await,
            Err(AppError::JobNotFound(_))
        ));
    }
}
