//! What Lambda's event sources do on AWS, done in-process: polling the queue for the worker, and
//! the periodic sweeper and cleanup.

use chrono::Utc;
use futures_util::future::join_all;
use image2model_shared::AppContext;
use image2model_shared::app::cleanup::cleanup;
use image2model_shared::app::sweep::sweep;
use image2model_shared::app::work::{MessageOutcome, Worker};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const IDLE_POLL: Duration = Duration::from_millis(100);
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);

/// Sleeps for `d` unless shutdown is signalled first; returns whether to stop.
async fn pause(signal: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = signal.wait_for(|stop| *stop) => true,
    };
    stopped || *signal.borrow()
}

pub async fn run_worker(ctx: AppContext, worker: Worker, mut signal: watch::Receiver<bool>) {
    let visibility = ctx.config.visibility_timeout;
    while !*signal.borrow() {
        let messages = match ctx
            .queue
            .receive(ctx.config.worker_concurrency, visibility)
            .await
        {
            Ok(messages) => messages,
            Err(err) => {
                tracing::warn!(error = %err, "queue receive failed");
                if pause(&mut signal, Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        if messages.is_empty() {
            if pause(&mut signal, IDLE_POLL).await {
                break;
            }
            continue;
        }
        // In-flight messages finish even during shutdown; they are never cut in half.
        join_all(messages.into_iter().map(|message| {
            let worker = worker.clone();
            let queue = ctx.queue.clone();
            async move {
                if worker.handle_message(&message.body).await == MessageOutcome::Done
                    && let Err(err) = queue.delete(&message.receipt).await
                {
                    tracing::warn!(message_id = %message.message_id, error = %err, "ack failed; the message will be redelivered");
                }
            }
        }))
        .await;
    }
}

pub async fn run_sweeper(ctx: AppContext, mut signal: watch::Receiver<bool>) {
    let mut last_cleanup = Instant::now();
    loop {
        if pause(&mut signal, ctx.config.sweep_interval).await {
            break;
        }
        if let Err(err) = sweep(&ctx, Utc::now()).await {
            tracing::warn!(error = %err, "sweep failed");
        }
        if last_cleanup.elapsed() >= CLEANUP_EVERY {
            last_cleanup = Instant::now();
            if let Err(err) = cleanup(&ctx, ctx.config.retention, false, Utc::now()).await {
                tracing::warn!(error = %err, "cleanup failed");
            }
        }
    }
}
