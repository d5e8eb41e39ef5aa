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
        let sender = Sender::new(
            ctx.config.webhooks.allow_private,
            ctx.config.webhooks.timeout,
        )?;
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
            &ctx.config.webhooks.retry_schedule,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::cancel_job::cancel_job;
    use crate::app::testing::{
        TestContext, batch_of_two, caller, completed, context_with, queued_job, ready_file,
    };
    use crate::app::webhook_endpoints::{NewEndpoint, register};
    use crate::app::webhook_events::{announce_job_end, list_deliveries, ping, resend};
    use crate::domain::webhook::{EventType, WebhookEndpoint};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A receiver on loopback answering each path's statuses in turn (the last one after), and
    /// the (path, body) of every request.
    struct Receiver {
        origin: String,
        seen: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    }

    async fn receiver(script: &[(&str, &[u16])]) -> Receiver {
        let script: Arc<Vec<(String, Vec<u16>)>> = Arc::new(
            script
                .iter()
                .map(|(p, s)| ((*p).to_owned(), s.to_vec()))
                .collect(),
        );
        let seen: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |uri: http::Uri, body: String| {
            let (script, log) = (script.clone(), log.clone());
            async move {
                let path = uri.path().to_owned();
                let mut seen = log.lock().unwrap();
                let n = seen.iter().filter(|(p, _)| *p == path).count();
                seen.push((path.clone(), serde_json::from_str(&body).unwrap()));
                let statuses = &script.iter().find(|(p, _)| *p == path).unwrap().1;
                let status = statuses.get(n).or(statuses.last()).copied().unwrap();
                http::StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { origin, seen }
    }

    impl Receiver {
        fn at(&self, path: &str) -> Vec<serde_json::Value> {
            let seen = self.seen.lock().unwrap();
            seen.iter()
                .filter(|(p, _)| p == path)
                .map(|(_, b)| b.clone())
                .collect()
        }
    }

    /// Deliveries to loopback, retried at once (`waits` of zero, as many as given).
    fn webhook_context(waits: usize) -> TestContext {
        context_with(|c| {
            c.webhooks.allow_private = true;
            c.webhooks.retry_schedule = vec![Duration::ZERO; waits];
            c.webhooks.timeout = Duration::from_secs(2);
        })
    }

    async fn endpoint(
        t: &TestContext,
        owner: &str,
        url: String,
        events: Option<Vec<EventType>>,
    ) -> WebhookEndpoint {
        let new = NewEndpoint {
            url,
            events,
            description: None,
        };
        register(t, owner, new).await.unwrap().endpoint
    }

    /// Handles every message the deliveries' queue has visible, until it has none.
    async fn pump(t: &TestContext) {
        let deliverer = Deliverer::new(t.ctx.clone()).unwrap();
        for _ in 0..100 {
            let messages = t
                .deliveries
                .receive(10, Duration::from_secs(30))
                .await
                .unwrap();
            if messages.is_empty() {
                return;
            }
            for m in messages {
                assert_eq!(
                    deliverer.handle_message(&m.body).await,
                    MessageOutcome::Done
                );
                t.deliveries.delete(&m.receipt).await.unwrap();
            }
        }
        panic!("the deliveries never settled");
    }

    #[tokio::test]
    async fn a_job_end_reaches_each_endpoint_that_wants_it_once_with_links_that_last() {
        let t = webhook_context(3);
        let r = receiver(&[("/all", &[204]), ("/failed", &[204])]).await;
        let all = endpoint(&t, "alice", format!("{}/all", r.origin), None).await;
        endpoint(
            &t,
            "alice",
            format!("{}/failed", r.origin),
            Some(vec![EventType::JobFailed]),
        )
        .await;
        endpoint(&t, "bob", format!("{}/all", r.origin), None).await;
        let file = ready_file(&t, "alice").await;
        let job = completed(&t, &queued_job(&t, &file, "relief").await).await;
        announce_job_end(&t, &job).await;
        announce_job_end(&t, &job).await; // handled twice: one delivery
        pump(&t).await;

        let got = r.at("/all");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["type"], "job.completed");
        assert_eq!(got[0]["data"]["job_id"], job.job_id.to_string());
        assert_eq!(got[0]["data"]["owner"], "alice");
        let glb = got[0]["data"]["links"]["downloads"]["glb"]
            .as_str()
            .unwrap();
        assert!(
            glb.ends_with(&format!("/api/v1/download/{}?format=glb", job.job_id)),
            "{glb}"
        );
        assert!(
            r.at("/failed").is_empty(),
            "an endpoint that takes job.failed only"
        );
        let listed = list_deliveries(&t, &caller("alice"), all.endpoint_id, None)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].status,
                listed[0].attempts,
                listed[0].last_status_code
            ),
            (DeliveryStatus::Delivered, 1, Some(204))
        );
        for limit in [0, 101] {
            assert!(matches!(
                list_deliveries(&t, &caller("alice"), all.endpoint_id, Some(limit)).await,
                Err(AppError::Invalid { .. })
            ));
        }
    }

    #[tokio::test]
    async fn failures_retry_until_the_schedule_is_spent_and_410_disables_the_endpoint() {
        let t = webhook_context(2);
        let r = receiver(&[("/down", &[500]), ("/gone", &[410])]).await;
        let down = endpoint(&t, "alice", format!("{}/down", r.origin), None).await;
        let gone = endpoint(&t, "alice", format!("{}/gone", r.origin), None).await;
        let job = queued_job(&t, &ready_file(&t, "alice").await, "relief").await;
        cancel_job(&t, &caller("alice"), job.job_id).await.unwrap();
        pump(&t).await;

        let tries = r.at("/down");
        assert_eq!(tries.len(), 3, "the first attempt and two retries");
        assert!(tries.iter().all(|b| b["type"] == "job.cancelled"));
        let spent = &list_deliveries(&t, &caller("alice"), down.endpoint_id, None)
            .await
            .unwrap()[0];
        assert_eq!(
            (spent.status, spent.attempts, spent.last_status_code),
            (DeliveryStatus::Failed, 3, Some(500))
        );
        let failing = t
            .webhooks
            .get_endpoint(down.endpoint_id)
            .await
            .unwrap()
            .unwrap();
        assert!(failing.failing_since.is_some() && failing.disabled.is_none());

        assert_eq!(r.at("/gone").len(), 1, "410 is not retried");
        let disabled = t
            .webhooks
            .get_endpoint(gone.endpoint_id)
            .await
            .unwrap()
            .unwrap();
        assert!(disabled.disabled.is_some());
        // Nothing more goes to a disabled endpoint: neither a resend nor a ping.
        let delivery = list_deliveries(&t, &caller("alice"), gone.endpoint_id, None)
            .await
            .unwrap()[0]
            .clone();
        assert!(matches!(
            resend(&t, &caller("alice"), delivery.delivery_id).await,
            Err(AppError::EndpointDisabled(_))
        ));
        assert!(matches!(
            ping(&t, &caller("alice"), gone.endpoint_id).await,
            Err(AppError::EndpointDisabled(_))
        ));
        // A delivery queued before its endpoint was disabled is given up without an attempt.
        let queued = ping(&t, &caller("alice"), down.endpoint_id).await.unwrap();
        let current = t
            .webhooks
            .get_endpoint(down.endpoint_id)
            .await
            .unwrap()
            .unwrap();
        let gone_now = current.after_attempt(Some(410), Utc::now()).unwrap();
        t.webhooks.update_endpoint(&gone_now).await.unwrap();
        pump(&t).await;
        assert_eq!(
            r.at("/down").len(),
            3,
            "no attempt after the endpoint was disabled"
        );
        let abandoned = t
            .webhooks
            .get_delivery(queued.delivery_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(abandoned.status, DeliveryStatus::Failed);
        assert_eq!(abandoned.last_error.as_deref(), Some(ENDPOINT_DISABLED));
        assert!(matches!(
            resend(&t, &caller("bob"), delivery.delivery_id).await,
            Err(AppError::DeliveryNotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_wait_longer_than_the_queue_delays_is_chained() {
        let t = context_with(|c| {
            c.webhooks.allow_private = true;
            c.webhooks.retry_schedule = vec![Duration::from_secs(3600)];
        });
        let r = receiver(&[("/down", &[503])]).await;
        let e = endpoint(&t, "alice", format!("{}/down", r.origin), None).await;
        let sent = ping(&t, &caller("alice"), e.endpoint_id).await.unwrap();
        pump(&t).await;
        let pending = t
            .webhooks
            .get_delivery(sent.delivery_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pending.status, DeliveryStatus::Pending);
        let due = pending.next_attempt_at.unwrap() - Utc::now();
        assert!(due > chrono::Duration::minutes(50), "{due}");
        assert_eq!(t.deliveries.depth().await.unwrap().delayed, 1);
        // Woken early (the chained message), it only waits again.
        let deliverer = Deliverer::new(t.ctx.clone()).unwrap();
        let again = serde_json::json!({"kind": "attempt", "delivery_id": sent.delivery_id});
        deliverer.handle_message(&again.to_string()).await;
        assert_eq!(r.at("/down").len(), 1);
        assert_eq!(t.deliveries.depth().await.unwrap().delayed, 2);
        // Waiting for its retry, it may be resent now; once due (queued) it may not, twice.
        let resent = resend(&t, &caller("alice"), sent.delivery_id)
            .await
            .unwrap();
        assert_eq!(
            resent.next_attempt_at.map(|at| at <= Utc::now()),
            Some(true)
        );
        assert!(matches!(
            resend(&t, &caller("alice"), sent.delivery_id).await,
            Err(AppError::DeliveryInProgress(_))
        ));
        // What is not ours is dropped.
        assert_eq!(
            deliverer.handle_message("not json").await,
            MessageOutcome::Done
        );
        assert_eq!(r.at("/down")[0]["type"], "ping");
    }

    #[tokio::test]
    async fn a_batch_is_announced_once_when_its_last_job_ends() {
        let t = webhook_context(1);
        let r = receiver(&[("/hook", &[200])]).await;
        endpoint(
            &t,
            "alice",
            format!("{}/hook", r.origin),
            Some(vec![EventType::BatchCompleted]),
        )
        .await;
        let (_, batch, jobs) = batch_of_two(&t, "alice").await;
        let first = completed(&t, &jobs[0]).await;
        announce_job_end(&t, &first).await;
        pump(&t).await;
        assert!(r.at("/hook").is_empty(), "one job of two ended");
        let second = completed(&t, &jobs[1]).await;
        announce_job_end(&t, &second).await;
        announce_job_end(&t, &first).await;
        pump(&t).await;
        let got = r.at("/hook");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["data"]["batch_id"], batch.batch_id.to_string());
        assert_eq!(got[0]["data"]["counts"]["completed"], 2);
        assert_eq!(got[0]["data"]["jobs"].as_array().unwrap().len(), 2);
    }
}
