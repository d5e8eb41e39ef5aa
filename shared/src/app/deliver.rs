//! What the delivery function does with one message of the deliveries' queue: an announcement
//! becomes its deliveries ([`super::webhook_events`]); an attempt, once due, is signed (every
//! secret the endpoint signs with), sent once, and recorded on the delivery (delivered, failed,
//! or pending until the schedule's next wait, queued again) and on the endpoint (a 410 or days
//! of failures disable it). A wait longer than SQS's 15-minute delay is made of several.

use super::error::AppError;
use super::webhook_events::{DeliveryMessage, fan_out_job_end, queue_message};
use super::work::MessageOutcome;
use crate::context::AppContext;
use crate::domain::DeliveryId;
use crate::domain::webhook::{AttemptOutcome, DeliveryStatus};
use crate::ports::StoreError;
use crate::webhooks::send::{Sender, SignedDelivery};
use crate::webhooks::signature::{SigningSecret, signature_header};
use chrono::Utc;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;

/// Why a delivery was given up without an attempt.
const ENDPOINT_DISABLED: &str = "the endpoint was disabled before this attempt";

/// Handles the deliveries' queue, with the HTTP client built once.
#[derive(Clone)]
pub struct Deliverer {
    ctx: AppContext,
    sender: Sender,
}

impl Deliverer {
    /// A deliverer whose attempts obey `WEBHOOK_ALLOW_PRIVATE` and `WEBHOOK_TIMEOUT_SECONDS`.
    pub fn new(ctx: AppContext) -> Result<Self, reqwest::Error> {
        let sender = Sender::new(ctx.config.webhook_allow_private, ctx.config.webhook_timeout)?;
        Ok(Self { ctx, sender })
    }

    /// Handles one message; [`MessageOutcome::Retry`] leaves it for redelivery (a store or queue
    /// that failed, or a panic). A message that is not ours is logged and dropped.
    pub async fn handle_message(&self, body: &str) -> MessageOutcome {
        let handled = AssertUnwindSafe(self.handle(body)).catch_unwind().await;
        match handled {
            Ok(Ok(())) => MessageOutcome::Done,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "delivery message not handled; it will be redelivered");
                MessageOutcome::Retry
            }
            Err(_) => {
                tracing::error!("the deliverer panicked on a message; it will be redelivered");
                MessageOutcome::Retry
            }
        }
    }

    async fn handle(&self, body: &str) -> Result<(), AppError> {
        match serde_json::from_str::<DeliveryMessage>(body) {
            Ok(DeliveryMessage::JobEnded { job_id, version }) => {
                fan_out_job_end(&self.ctx, job_id, version).await
            }
            Ok(DeliveryMessage::Attempt { delivery_id }) => self.attempt(delivery_id).await,
            Err(err) => {
                tracing::warn!(error = %err, "not a delivery message; dropped");
                Ok(())
            }
        }
    }

    /// The attempt of delivery `id`, if it is pending and due; else, if pending, the message
    /// again for when it is due.
    async fn attempt(&self, id: DeliveryId) -> Result<(), AppError> {
        let ctx = &self.ctx;
        let Some(delivery) = ctx.webhooks.get_delivery(id).await? else {
            return Ok(()); // Its endpoint was deleted with it.
        };
        if delivery.status != DeliveryStatus::Pending {
            return Ok(());
        }
        let now = Utc::now();
        if let Some(wait) = delivery
            .next_attempt_at
            .and_then(|due| (due - now).to_std().ok())
            .filter(|wait| !wait.is_zero())
        {
            return queue_message(ctx, &DeliveryMessage::Attempt { delivery_id: id }, wait).await;
        }
        let Some(endpoint) = ctx.webhooks.get_endpoint(delivery.endpoint_id).await? else {
            return Ok(());
        };
        if endpoint.disabled.is_some() {
            return match ctx
                .webhooks
                .update_delivery(&delivery.abandon(ENDPOINT_DISABLED, now))
                .await
            {
                Ok(()) | Err(StoreError::Conflict) => Ok(()),
                Err(other) => Err(other.into()),
            };
        }
        let secrets: Vec<SigningSecret> = endpoint
            .signing_secrets(now)
            .filter_map(|s| SigningSecret::parse(s).ok())
            .collect();
        let timestamp = now.timestamp();
        let signature = signature_header(
            &secrets,
            &delivery.event_id,
            timestamp,
            delivery.payload.as_bytes(),
        );
        let outcome = self
            .sender
            .send(&SignedDelivery {
                url: &endpoint.url,
                event_id: &delivery.event_id,
                timestamp,
                signature: &signature,
                body: &delivery.payload,
            })
            .await;
        let after = delivery.after_attempt(
            &outcome,
            &ctx.config.webhook_retry_schedule,
            fastrand::f64(),
            Utc::now(),
        );
        tracing::info!(
            delivery_id = %id, endpoint_id = %endpoint.endpoint_id, event = ?delivery.event_type,
            attempt = after.attempts, outcome = ?outcome, status = ?after.status,
            "webhook attempt"
        );
        match ctx.webhooks.update_delivery(&after).await {
            Ok(()) => {}
            // Resent or recorded by another attempt meanwhile: that one goes on.
            Err(StoreError::Conflict) => return Ok(()),
            Err(other) => return Err(other.into()),
        }
        self.record_on_endpoint(&endpoint.endpoint_id, &outcome)
            .await?;
        if let Some(due) = after
            .next_attempt_at
            .filter(|_| after.status == DeliveryStatus::Pending)
        {
            let wait = (due - Utc::now()).to_std().unwrap_or_default();
            queue_message(ctx, &DeliveryMessage::Attempt { delivery_id: id }, wait).await?;
        }
        Ok(())
    }

    /// What the attempt means for its endpoint: a success ends a run of failures, a 410 or a
    /// run long enough disables it.
    async fn record_on_endpoint(
        &self,
        id: &crate::domain::EndpointId,
        outcome: &AttemptOutcome,
    ) -> Result<(), AppError> {
        let status = outcome.status();
        for _ in 0..8 {
            let Some(endpoint) = self.ctx.webhooks.get_endpoint(*id).await? else {
                return Ok(());
            };
            let Some(next) = endpoint.after_attempt(status, Utc::now()) else {
                return Ok(());
            };
            match self.ctx.webhooks.update_endpoint(&next).await {
                Ok(()) => {
                    if let Some(why) = &next.disabled {
                        tracing::warn!(endpoint_id = %id, reason = ?why, "webhook endpoint disabled");
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(AppError::Conflict)
    }
}
