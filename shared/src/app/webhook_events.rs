//! What the owners' webhooks are told, and the deliveries that tell them. A job that ends is
//! announced on the deliveries' queue ([`announce_job_end`]: one message, so the write that
//! ended the job waits for nothing else); the delivery function turns the announcement into one
//! delivery per endpoint that wants the event ([`fan_out_job_end`], with `batch.completed` when
//! it was the last job of its batch), each with the payload every attempt sends, and queues its
//! first attempt. An owner's test ping and resend queue one too. Ids follow from the event, so an
//! announcement handled twice makes each delivery once.

use super::error::AppError;
use super::job_view::JobView;
use super::webhook_endpoints::owned_endpoint;
use crate::context::AppContext;
use crate::domain::webhook::{Delivery, DeliveryStatus, EventType};
use crate::domain::{
    BatchId, DeliveryId, EndpointId, GenerationJob, JobId, JobStatus, ModelFormat,
};
use crate::keys::Caller;
use crate::ports::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The longest delay SQS gives a message; a longer wait is made of several.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(15 * 60);

/// The most deliveries one listing returns.
pub const MAX_DELIVERY_LIST: usize = 100;

/// A message on the deliveries' queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeliveryMessage {
    /// Job `job_id` ended with its write of `version`: make its deliveries.
    JobEnded { job_id: JobId, version: u64 },
    /// Make the next attempt of a delivery, when it is due.
    Attempt { delivery_id: DeliveryId },
}

/// Queues `message` for the delivery function after `delay` (at most [`MAX_QUEUE_DELAY`]).
pub async fn queue_message(
    ctx: &AppContext,
    message: &DeliveryMessage,
    delay: Duration,
) -> Result<(), AppError> {
    let body = serde_json::to_string(message).map_err(not_encoded)?;
    ctx.deliveries
        .send(&body, delay.min(MAX_QUEUE_DELAY))
        .await?;
    Ok(())
}

/// Announces that `job` ended (called by the write that ended it). A queue that fails is logged:
/// the job's end stands, and its owner still sees it by the stream or a poll.
pub async fn announce_job_end(ctx: &AppContext, job: &GenerationJob) {
    let message = DeliveryMessage::JobEnded {
        job_id: job.job_id,
        version: job.version,
    };
    if let Err(err) = queue_message(ctx, &message, Duration::ZERO).await {
        tracing::error!(job_id = %job.job_id, error = %err, "job end not announced to webhooks");
    }
}

/// The event a job in `status` is announced as, once it ended.
fn job_event(status: JobStatus) -> Option<EventType> {
    match status {
        JobStatus::Completed => Some(EventType::JobCompleted),
        JobStatus::Failed => Some(EventType::JobFailed),
        JobStatus::Cancelled => Some(EventType::JobCancelled),
        _ => None,
    }
}

/// The body of every attempt of one event, as the Standard Webhooks specification shapes it.
#[derive(Debug, Serialize)]
pub struct EventBody<T: Serialize> {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the event happened (RFC 3339).
    pub timestamp: String,
    pub data: T,
}

/// Links that outlive the delivery: each answers with the caller's key (a download redirects to
/// a freshly signed URL), however late the receiver follows it.
#[derive(Debug, Serialize)]
pub struct JobLinks {
    /// `GET /api/v1/jobs/{job_id}`.
    pub job: String,
    /// `GET /api/v1/download/{job_id}?format=...` per format, once completed.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub downloads: BTreeMap<&'static str, String>,
}

/// A job event's `data`: the job as its owner sees it, and its links.
#[derive(Debug, Serialize)]
pub struct JobEventData {
    #[serde(flatten)]
    pub job: JobView,
    pub links: JobLinks,
}

/// A `batch.completed` event's `data`: every job of the batch, each ended.
#[derive(Debug, Serialize)]
pub struct BatchEventData {
    pub batch_id: BatchId,
    pub owner: String,
    /// How many jobs ended in each state.
    pub counts: BTreeMap<JobStatus, usize>,
    pub jobs: Vec<JobEventData>,
}

/// A `ping`'s `data`.
#[derive(Debug, Serialize)]
pub struct PingData {
    pub endpoint_id: EndpointId,
    pub message: &'static str,
}

/// The origin the links of a payload name: `PUBLIC_BASE_URL`, else this machine's port.
fn api_origin(ctx: &AppContext) -> String {
    ctx.config
        .local
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", ctx.config.local.port))
}

fn job_data(ctx: &AppContext, job: &GenerationJob) -> JobEventData {
    let origin = api_origin(ctx);
    let downloads = if job.status == JobStatus::Completed && job.result.is_some() {
        ModelFormat::ALL
            .into_iter()
            .map(|f| {
                (
                    f.as_str(),
                    format!(
                        "{origin}/api/v1/download/{}?format={}",
                        job.job_id,
                        f.as_str()
                    ),
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    JobEventData {
        job: JobView::from(job),
        links: JobLinks {
            job: format!("{origin}/api/v1/jobs/{}", job.job_id),
            downloads,
        },
    }
}

fn body<T: Serialize>(
    event_type: EventType,
    at: DateTime<Utc>,
    data: T,
) -> Result<String, AppError> {
    serde_json::to_string(&EventBody {
        event_type,
        timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        data,
    })
    .map_err(not_encoded)
}

/// JSON that could not be written (types whose every map key is a string cannot fail).
fn not_encoded(e: serde_json::Error) -> AppError {
    AppError::Queue(crate::ports::QueueError::Backend(format!(
        "webhook message not encoded: {e}"
    )))
}

/// Makes the deliveries of job `job_id`'s end (announced at `version`), and of its batch's end
/// when it was the batch's last job. Nothing for a job that is gone or running again.
pub async fn fan_out_job_end(
    ctx: &AppContext,
    job_id: JobId,
    version: u64,
) -> Result<(), AppError> {
    let Some(job) = ctx.store.get_job(job_id).await? else {
        return Ok(());
    };
    let Some(event) = job_event(job.status) else {
        return Ok(());
    };
    let at = job.completed_at.unwrap_or(job.updated_at);
    let event_id = format!("msg_{}_{version}", job_id.as_uuid().simple());
    let payload = body(event, at, job_data(ctx, &job))?;
    deliver_to_owner(ctx, &job.owner, event, &event_id, &payload).await?;
    if let Some(batch_id) = job.batch_id {
        fan_out_batch_end(ctx, batch_id).await?;
    }
    Ok(())
}

/// `batch.completed`, once every job of the batch ended. Its id follows from the jobs' versions,
/// so the jobs that end last together announce it once, and a batch ending again after a retry
/// announces it again.
async fn fan_out_batch_end(ctx: &AppContext, batch_id: BatchId) -> Result<(), AppError> {
    let Some(batch) = ctx.store.get_batch(batch_id).await? else {
        return Ok(());
    };
    let mut jobs = Vec::with_capacity(batch.job_ids.len());
    for id in &batch.job_ids {
        if let Some(job) = ctx.store.get_job(*id).await? {
            if !job.status.is_terminal() {
                return Ok(());
            }
            jobs.push(job);
        }
    }
    let versions: u64 = jobs.iter().map(|j| j.version).sum();
    let event_id = format!("msg_{}_{versions}", batch_id.as_uuid().simple());
    let at = jobs
        .iter()
        .map(|j| j.completed_at.unwrap_or(j.updated_at))
        .max()
        .unwrap_or_else(Utc::now);
    let mut counts = BTreeMap::new();
    for job in &jobs {
        *counts.entry(job.status).or_insert(0) += 1;
    }
    let data = BatchEventData {
        batch_id,
        owner: batch.owner.clone(),
        counts,
        jobs: jobs.iter().map(|j| job_data(ctx, j)).collect(),
    };
    let payload = body(EventType::BatchCompleted, at, data)?;
    deliver_to_owner(
        ctx,
        &batch.owner,
        EventType::BatchCompleted,
        &event_id,
        &payload,
    )
    .await
}

/// One delivery of the event to each of `owner`'s endpoints that wants it, its first attempt
/// queued. A delivery made before (the announcement handled again, or by two jobs of a batch) is
/// queued again only if it was never tried for a while: the handling that made it stopped
/// between the two steps.
async fn deliver_to_owner(
    ctx: &AppContext,
    owner: &str,
    event: EventType,
    event_id: &str,
    payload: &str,
) -> Result<(), AppError> {
    let now = Utc::now();
    for endpoint in ctx.webhooks.list_endpoints(Some(owner)).await? {
        if !endpoint.wants(event) {
            continue;
        }
        let delivery = Delivery::new(
            &endpoint,
            event_id.to_owned(),
            event,
            payload.to_owned(),
            now,
        );
        match ctx.webhooks.create_delivery(&delivery).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                // Untried for longer than an attempt takes: its first message was never sent.
                // (A younger one is being handled: queueing it again would send it twice.)
                let stalled = now
                    - chrono::Duration::from_std(ctx.config.webhooks.timeout * 2)
                        .unwrap_or_default();
                let lost = ctx
                    .webhooks
                    .get_delivery(delivery.delivery_id)
                    .await?
                    .is_some_and(|d| d.last_attempt_at.is_none() && d.created_at < stalled);
                if !lost {
                    continue;
                }
            }
            Err(other) => return Err(other.into()),
        }
        let attempt = DeliveryMessage::Attempt {
            delivery_id: delivery.delivery_id,
        };
        queue_message(ctx, &attempt, Duration::ZERO).await?;
    }
    Ok(())
}

/// Sends a `ping` to the caller's endpoint `id` (whatever events it takes); the delivery is
/// made like any other and listed with them.
pub async fn ping(ctx: &AppContext, caller: &Caller, id: EndpointId) -> Result<Delivery, AppError> {
    let endpoint = owned_endpoint(ctx, caller, id).await?;
    if endpoint.disabled.is_some() {
        return Err(AppError::EndpointDisabled(id));
    }
    let now = Utc::now();
    let data = PingData {
        endpoint_id: id,
        message: "A test delivery from image2model: this endpoint receives webhooks.",
    };
    let event_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let delivery = Delivery::new(
        &endpoint,
        event_id,
        EventType::Ping,
        body(EventType::Ping, now, data)?,
        now,
    );
    ctx.webhooks.create_delivery(&delivery).await?;
    let attempt = DeliveryMessage::Attempt {
        delivery_id: delivery.delivery_id,
    };
    queue_message(ctx, &attempt, Duration::ZERO).await?;
    Ok(delivery)
}

/// The caller's delivery `id` (any, for the admin).
pub async fn owned_delivery(
    ctx: &AppContext,
    caller: &Caller,
    id: DeliveryId,
) -> Result<Delivery, AppError> {
    match ctx.webhooks.get_delivery(id).await? {
        Some(d) if caller.is_admin || d.owner == caller.owner => Ok(d),
        _ => Err(AppError::DeliveryNotFound(id)),
    }
}

/// The newest `limit` (1 to [`MAX_DELIVERY_LIST`], 20 by default) deliveries to the caller's
/// endpoint `id`, newest first.
pub async fn list_deliveries(
    ctx: &AppContext,
    caller: &Caller,
    id: EndpointId,
    limit: Option<usize>,
) -> Result<Vec<Delivery>, AppError> {
    let limit = limit.unwrap_or(20);
    if !(1..=MAX_DELIVERY_LIST).contains(&limit) {
        return Err(AppError::invalid(
            format!("limit must be between 1 and {MAX_DELIVERY_LIST}"),
            Some("limit"),
        ));
    }
    owned_endpoint(ctx, caller, id).await?;
    Ok(ctx.webhooks.list_deliveries(id, limit).await?)
}

/// Sends the caller's delivery `id` again now, with its `webhook-id` and body; its attempts
/// count from zero again. Not while an attempt is due or under way
/// ([`AppError::DeliveryInProgress`]), nor to a disabled endpoint.
pub async fn resend(
    ctx: &AppContext,
    caller: &Caller,
    id: DeliveryId,
) -> Result<Delivery, AppError> {
    let current = owned_delivery(ctx, caller, id).await?;
    let now = Utc::now();
    // Pending and due: an attempt is queued or under way, and a second would send it twice.
    if current.status == DeliveryStatus::Pending
        && current.next_attempt_at.is_none_or(|at| at <= now)
    {
        return Err(AppError::DeliveryInProgress(id));
    }
    let endpoint = ctx.webhooks.get_endpoint(current.endpoint_id).await?;
    if endpoint.is_some_and(|e| e.disabled.is_some()) {
        return Err(AppError::EndpointDisabled(current.endpoint_id));
    }
    let again = current.resend(now);
    match ctx.webhooks.update_delivery(&again).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(AppError::DeliveryInProgress(id)),
        Err(other) => return Err(other.into()),
    }
    queue_message(
        ctx,
        &DeliveryMessage::Attempt { delivery_id: id },
        Duration::ZERO,
    )
    .await?;
    Ok(again)
}
