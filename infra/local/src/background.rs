//! What Lambda's event sources do on AWS, done in-process: polling the work queue for the
//! worker and the deliveries' queue for the webhook deliverer, and the periodic sweeper and
//! cleanup.

use chrono::Utc;
use image2model_shared::AppContext;
use image2model_shared::adapters::embedded::DiskStorage;
use image2model_shared::app::cleanup::{CleanupPass, cleanup};
use image2model_shared::app::deliver::Deliverer;
use image2model_shared::app::sweep::{ingest_stored_uploads, sweep};
use image2model_shared::app::work::{MessageOutcome, Worker};
use image2model_shared::ports::WorkQueue;
use image2model_shared::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

const IDLE_POLL: Duration = Duration::from_millis(100);
/// The most messages one receive asks for (SQS's own limit).
const RECEIVE_BATCH: usize = 10;
/// Webhook attempts in hand at once: each may wait on a receiver for its whole timeout, so
/// slow receivers of one owner leave room for everyone else's.
const DELIVERY_CONCURRENCY: usize = 64;
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);
/// How long one cleanup may hold up the sweep that shares its loop; the rest waits a round.
const CLEANUP_BUDGET: Duration = Duration::from_secs(60);

/// Sleeps for `d` unless shutdown is signalled first; returns whether to stop.
async fn pause(shutdown: &Shutdown, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => shutdown.is_triggered(),
        _ = shutdown.triggered() => true,
    }
}

/// Polls `queue` and hands each message to `handle`, keeping at most `concurrency` in hand at
/// once (a free slot is filled as soon as it frees, so one slow message holds up no other), each
/// hidden for `visibility` meanwhile; a message handled [`MessageOutcome::Done`] is
/// acknowledged, any other is left for redelivery (as Lambda's SQS event source does). On
/// shutdown the messages in hand finish; none is cut in half.
async fn consume<F, Fut>(
    queue: Arc<dyn WorkQueue>,
    shutdown: Shutdown,
    concurrency: usize,
    visibility: Duration,
    handle: F,
) where
    F: Fn(String) -> Fut,
    Fut: Future<Output = MessageOutcome> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut in_hand = JoinSet::new();
    while !shutdown.is_triggered() {
        while in_hand.try_join_next().is_some() {}
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                _ = in_hand.join_next() => {}
                _ = shutdown.triggered() => break,
            }
            continue;
        }
        let messages = match queue.receive(free.min(RECEIVE_BATCH), visibility).await {
            Ok(messages) => messages,
            Err(err) => {
                tracing::warn!(error = %err, "queue receive failed");
                if pause(&shutdown, Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        if messages.is_empty() {
            if pause(&shutdown, IDLE_POLL).await {
                break;
            }
            continue;
        }
        for message in messages {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let handled = handle(message.body);
            let queue = queue.clone();
            in_hand.spawn(async move {
                // A panic while handling one message fails that message alone (the handlers
                // catch it): it is left for redelivery.
                if handled.await == MessageOutcome::Done
                    && let Err(err) = queue.delete(&message.receipt).await
                {
                    tracing::warn!(message_id = %message.message_id, error = %err, "ack failed; the message will be redelivered");
                }
                drop(slot);
            });
        }
    }
    while in_hand.join_next().await.is_some() {}
}

/// The worker on the work queue.
pub async fn run_worker(ctx: AppContext, worker: Worker) {
    consume(
        ctx.queue.clone(),
        ctx.shutdown.clone(),
        ctx.config.local.worker_concurrency,
        ctx.config.jobs.visibility_timeout,
        |body| {
            let worker = worker.clone();
            async move { worker.handle_message(&body).await }
        },
    )
    .await;
}

/// The webhook deliveries on their queue: each message takes at most one attempt's timeout and a
/// few store writes, so three timeouts of visibility cover it (and a message whose process was
/// killed mid-attempt comes back that soon).
pub async fn run_deliveries(ctx: AppContext, deliverer: Deliverer) {
    consume(
        ctx.deliveries.clone(),
        ctx.shutdown.clone(),
        DELIVERY_CONCURRENCY,
        ctx.config.webhooks.timeout * 3,
        |body| {
            let deliverer = deliverer.clone();
            async move { deliverer.handle_message(&body).await }
        },
    )
    .await;
}

/// At start, the uploads stored but not ingested; then the sweep every `SWEEP_INTERVAL_SECONDS`;
/// cleanup (with the storage's stale temp files) every hour, or every `RETENTION_SECONDS` when
/// that is shorter, so a short retention is kept to.
pub async fn run_sweeper(ctx: AppContext, disk: Arc<DiskStorage>) {
    let shutdown = ctx.shutdown.clone();
    let cleanup_every = CLEANUP_EVERY.min(ctx.config.jobs.retention);
    let mut last_cleanup = Instant::now();
    // Uploads the previous process stored and was killed before ingesting.
    if let Err(err) = ingest_stored_uploads(&ctx, Utc::now()).await {
        tracing::warn!(error = %err, "stored uploads not ingested at start");
    }
    loop {
        if pause(&shutdown, ctx.config.local.sweep_interval).await {
            break;
        }
        if let Err(err) = sweep(&ctx, Utc::now()).await {
            tracing::warn!(error = %err, "sweep failed");
        }
        if last_cleanup.elapsed() >= cleanup_every {
            last_cleanup = Instant::now();
            let pass = CleanupPass {
                older_than: ctx.config.jobs.retention,
                dry_run: false,
                budget: CLEANUP_BUDGET,
            };
            if let Err(err) = cleanup(&ctx, pass, Utc::now()).await {
                tracing::warn!(error = %err, "cleanup failed");
            }
            // A write in progress is seconds old; one cut short by a full disk is not.
            if let Err(err) = disk.remove_stale_temp_files(CLEANUP_EVERY).await {
                tracing::warn!(error = %err, "stale temp files not removed");
            }
        }
    }
}
