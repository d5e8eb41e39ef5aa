//! Downloads: short-lived signed URLs of a caller's generated models, for one job or for every
//! completed job of a task.

use super::access::{owned_job, owned_task};
use super::convert::stored_format;
use super::enqueue::{WorkMessage, send_work};
use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{
    Converted, GenerationJob, JobId, JobResult, JobStatus, ModelFormat, StoredFormat, stem_of,
};
use crate::keys::Caller;
use crate::ports::PresignedRequest;
use crate::validation::filename::check_result_name;
use chrono::Utc;
use std::time::Duration;

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
    sign_result(ctx, job, result).await
}

/// Signs `result` (the job's model, or one of its conversions described as a result) and its
/// preview.
async fn sign_result(
    ctx: &AppContext,
    job: GenerationJob,
    result: JobResult,
) -> Result<Download, AppError> {
    let preview = sign_preview(ctx, &result).await?;
    sign_with_preview(ctx, job, result, preview).await
}

/// The signed preview of `result`'s model, when it has one that is still stored.
async fn sign_preview(ctx: &AppContext, result: &JobResult) -> Result<Option<Preview>, AppError> {
    let Some(key) = &result.preview_key else {
        return Ok(None);
    };
    let Some(meta) = ctx.storage.head(key).await? else {
        return Ok(None);
    };
    let extension = key.rsplit_once('.').map_or("png", |(_, e)| e);
    let name = format!("{}-preview.{extension}", stem_of(&result.filename));
    Ok(Some(Preview {
        signed: ctx
            .storage
            .presign_get(key, &name, ctx.config.jobs.download_expiry)
            .await?,
        size: meta.size,
        content_type: meta.content_type,
    }))
}

/// Signs `result` alone; `preview` is its model's, signed already.
async fn sign_with_preview(
    ctx: &AppContext,
    job: GenerationJob,
    result: JobResult,
    preview: Option<Preview>,
) -> Result<Download, AppError> {
    let signed = ctx
        .storage
        .presign_get(
            &result.object_key,
            &result.filename,
            ctx.config.jobs.download_expiry,
        )
        .await?;
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

/// How long a client waits before asking again for a format being converted.
pub const CONVERSION_RETRY_AFTER: Duration = Duration::from_secs(3);

/// A first request for a format asks the worker to convert once per this window; a request
/// after it asks again (a lost message is re-sent, a made conversion is found).
const CONVERSION_REQUEST_WINDOW: chrono::Duration = chrono::Duration::minutes(2);

/// A format of a job's model: signed for download, or being converted.
#[derive(Debug, Clone)]
pub enum FormatDownload {
    Ready(Box<Download>),
    Converting { retry_after: Duration },
}

/// `stored` (a conversion of `job`'s model) described as the result a download signs.
fn conversion_result(result: &JobResult, stored: &StoredFormat) -> JobResult {
    let stem = stem_of(&result.filename);
    JobResult {
        object_key: stored.object_key.clone(),
        filename: stored.format.filename(stem),
        size: stored.size,
        content_type: stored.format.content_type().to_owned(),
        preview_key: result.preview_key.clone(),
        ..JobResult::default()
    }
}

/// The caller's job `id`'s model in `format`: signed when it is made, converting (asked of the
/// worker on the first request) when not yet, `FORMAT_NOT_CONVERTIBLE` when the model cannot be
/// made into it.
pub async fn download_format(
    ctx: &AppContext,
    caller: &Caller,
    id: JobId,
    format: ModelFormat,
) -> Result<FormatDownload, AppError> {
    let job = owned_job(ctx, caller, id).await?;
    let result = completed_result(&job)?;
    if format == ModelFormat::Glb {
        return Ok(FormatDownload::Ready(Box::new(
            sign_result(ctx, job, result).await?,
        )));
    }
    let known = match result.formats.iter().find(|f| f.format == format) {
        Some(stored) => Some(Converted::Stored(stored.clone())),
        None => match result.format_failures.iter().find(|f| f.format == format) {
            Some(failure) => Some(Converted::Failed(failure.clone())),
            None => stored_format(ctx, id, format).await?,
        },
    };
    match known {
        Some(Converted::Stored(stored)) => {
            let converted = conversion_result(&result, &stored);
            Ok(FormatDownload::Ready(Box::new(
                sign_result(ctx, job, converted).await?,
            )))
        }
        Some(Converted::Failed(failure)) => Err(AppError::FormatNotConvertible {
            format,
            reason: failure.reason,
        }),
        None => {
            let window = Utc::now() + CONVERSION_REQUEST_WINDOW;
            let asked = ctx
                .store
                .add_to_counter(&format!("convert:{id}:{format}"), 1, window)
                .await?;
            if asked == 1 {
                send_work(
                    ctx.queue.as_ref(),
                    &WorkMessage::convert(id, format),
                    Duration::ZERO,
                )
                .await?;
            }
            Ok(FormatDownload::Converting {
                retry_after: CONVERSION_RETRY_AFTER,
            })
        }
    }
}

/// Every format made of the model of `download`'s job, signed: the GLB first.
pub async fn download_formats(
    ctx: &AppContext,
    download: Download,
) -> Result<Vec<Download>, AppError> {
    let id = download.job.job_id;
    let stored = ctx.storage.list(&JobResult::prefix_for(id)).await?;
    let mut all = Vec::new();
    for format in ModelFormat::ALL
        .into_iter()
        .filter(|f| *f != ModelFormat::Glb)
    {
        let key = format.object_key(id);
        if let Some(meta) = stored.iter().find(|m| m.key == key) {
            let converted = conversion_result(
                &download.result,
                &StoredFormat {
                    format,
                    object_key: key,
                    size: meta.size,
                },
            );
            // The same model's preview, signed once for the GLB.
            let preview = download.preview.clone();
            all.push(sign_with_preview(ctx, download.job.clone(), converted, preview).await?);
        }
    }
    all.insert(0, download);
    Ok(all)
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
    let not_found = || AppError::ResultFileNotFound {
        task_id: id,
        filename: filename.to_owned(),
    };
    let jobs = owned_task(ctx, caller, id).await?.into_jobs();
    let completed = jobs
        .into_iter()
        .filter(|j| j.status == JobStatus::Completed && j.result.is_some());
    for job in completed {
        let Some(result) = job.result.clone() else {
            continue;
        };
        if result.filename == filename {
            return sign_result(ctx, job, result).await;
        }
        let Some(format) = ModelFormat::of_filename(filename) else {
            continue;
        };
        let stem = stem_of(&result.filename);
        if format == ModelFormat::Glb || format.filename(stem) != filename {
            continue;
        }
        if let Some(Converted::Stored(stored)) = stored_format(ctx, job.job_id, format).await? {
            let converted = conversion_result(&result, &stored);
            return sign_result(ctx, job, converted).await;
        }
    }
    Err(not_found())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{
        batch_of_two, caller, completed, completed_with_model, context, drain,
    };
    use crate::app::work::{MessageOutcome, Worker};

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

    #[tokio::test]
    async fn a_format_is_converted_on_its_first_request_by_the_worker_once_then_signed() {
        let t = context();
        let (_, batch, jobs) = batch_of_two(&t, "alice").await;
        let done = completed_with_model(&t, &jobs[0]).await;
        drain(&t).await; // the batch's own generate messages
        let alice = caller("alice");
        let id = done.job_id;

        // The first requests answer "converting" and ask the worker once.
        for _ in 0..3 {
            let answer = download_format(&t, &alice, id, ModelFormat::Usdz)
                .await
                .unwrap();
            assert!(
                matches!(answer, FormatDownload::Converting { retry_after } if retry_after == CONVERSION_RETRY_AFTER),
                "{answer:?}"
            );
        }
        let asked = drain(&t).await;
        assert_eq!(asked, [WorkMessage::convert(id, ModelFormat::Usdz)]);

        let worker = Worker::new(t.ctx.clone(), Vec::new());
        let body = serde_json::to_string(&asked[0]).unwrap();
        assert_eq!(worker.handle_message(&body).await, MessageOutcome::Done);
        let FormatDownload::Ready(usdz) = download_format(&t, &alice, id, ModelFormat::Usdz)
            .await
            .unwrap()
        else {
            panic!("the conversion is not found");
        };
        assert_eq!(
            (
                usdz.result.filename.as_str(),
                usdz.result.content_type.as_str()
            ),
            ("photo.usdz", "model/vnd.usdz+zip")
        );
        assert!(
            usdz.signed.url.contains("model%2Eusdz"),
            "{}",
            usdz.signed.url
        );
        let stored = t
            .storage
            .head(&usdz.result.object_key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.size, usdz.result.size);

        // The GLB is the stored model; every format made is listed, and found by its name.
        let FormatDownload::Ready(glb) = download_format(&t, &alice, id, ModelFormat::Glb)
            .await
            .unwrap()
        else {
            panic!("the GLB is always ready");
        };
        assert_eq!(glb.result.filename, "photo.glb");
        let listed = download_formats(&t, *glb).await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|d| d.result.filename.as_str())
                .collect::<Vec<_>>(),
            ["photo.glb", "photo.usdz"]
        );
        let task = JobId::from_uuid(batch.batch_id.as_uuid());
        let named = download_named(&t, &alice, task, "photo.usdz")
            .await
            .unwrap();
        assert_eq!(named.result.object_key, usdz.result.object_key);
        assert!(matches!(
            download_named(&t, &alice, task, "photo.stl").await,
            Err(AppError::ResultFileNotFound { .. })
        ));

        // Only its owner sees it; a job without a model has none to convert.
        assert!(matches!(
            download_format(&t, &caller("bob"), id, ModelFormat::Usdz).await,
            Err(AppError::JobNotFound(_))
        ));
        assert!(matches!(
            download_format(&t, &alice, jobs[1].job_id, ModelFormat::Stl).await,
            Err(AppError::ResultNotReady { .. })
        ));
        assert!(drain(&t).await.is_empty());
    }

    #[tokio::test]
    async fn a_model_the_converter_cannot_read_is_refused_by_format_with_its_reason() {
        let t = context();
        let (_, _, jobs) = batch_of_two(&t, "alice").await;
        // `completed` stores four bytes that are no GLB.
        let done = completed(&t, &jobs[0]).await;
        drain(&t).await; // the batch's own generate messages
        let alice = caller("alice");
        download_format(&t, &alice, done.job_id, ModelFormat::Stl)
            .await
            .unwrap();
        let worker = Worker::new(t.ctx.clone(), Vec::new());
        for message in drain(&t).await {
            let body = serde_json::to_string(&message).unwrap();
            assert_eq!(worker.handle_message(&body).await, MessageOutcome::Done);
        }
        for _ in 0..2 {
            let err = download_format(&t, &alice, done.job_id, ModelFormat::Stl)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, AppError::FormatNotConvertible { format: ModelFormat::Stl, reason } if reason.contains("glTF")),
                "{err:?}"
            );
        }
        assert!(
            drain(&t).await.is_empty(),
            "a known failure is not tried again"
        );
        assert!(matches!(
            download_format(&t, &alice, done.job_id, ModelFormat::Glb).await,
            Ok(FormatDownload::Ready(_))
        ));
    }
}
