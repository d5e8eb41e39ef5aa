//! Webhooks to the owners' servers: what an owner registers (an endpoint: its URL, the events
//! it wants, its signing secrets) and the schedule a delivery is retried on.

use super::ids::{DeliveryId, EndpointId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What happened, as a delivery's `type` names it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum EventType {
    #[serde(rename = "job.completed")]
    JobCompleted,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.cancelled")]
    JobCancelled,
    #[serde(rename = "batch.completed")]
    BatchCompleted,
    /// Sent by `POST .../{id}/test` only, to whatever events the endpoint takes.
    #[serde(rename = "ping")]
    Ping,
}

impl EventType {
    /// The events an endpoint gets when it names none.
    pub const DEFAULT: [Self; 4] = [
        Self::JobCompleted,
        Self::JobFailed,
        Self::JobCancelled,
        Self::BatchCompleted,
    ];
}

/// The waits before each retry of a delivery that failed (a non-2xx answer, a timeout, a
/// refused connection): about a day and a half in all, so a receiver down for a day still gets
/// every event. Each wait is drawn within 10 % of its value, so that the retries of many
/// deliveries that failed together do not arrive together.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The wait before attempt `attempts + 1` after `attempts` failed ones on `schedule`
/// ([`RETRY_SCHEDULE`] unless configured), with `jitter` in [0, 1) placing it within 10 % of the
/// schedule's value; `None` once the schedule is spent.
pub fn retry_delay(schedule: &[Duration], attempts: u32, jitter: f64) -> Option<Duration> {
    let base = schedule.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
    Some(base.mul_f64(factor))
}

/// How long a rotated-out secret keeps signing beside the new one.
pub const OLD_SECRET_GRACE: chrono::Duration = chrono::Duration::hours(24);

/// How long a delivery's record is kept: its schedule (a day and a half) and a month to look at
/// it (DynamoDB's `ttl`; the embedded store drops older ones as it adds new ones).
pub const DELIVERY_RETENTION: chrono::Duration = chrono::Duration::days(32);

/// The most secrets that sign a delivery at once: the current one and those rotated out within
/// their grace.
pub const MAX_SECRETS: usize = 5;

/// An endpoint whose deliveries have all failed for this long is disabled.
pub const DISABLE_AFTER_FAILING: chrono::Duration = chrono::Duration::days(5);

/// A secret of an endpoint, as stored: the `whsec_` text, and until when it signs (none for the
/// current one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSecret {
    pub secret: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why an endpoint no longer receives deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Disabled {
    /// The receiver answered 410 Gone.
    Gone { at: DateTime<Utc> },
    /// Every delivery failed for [`DISABLE_AFTER_FAILING`].
    Failing {
        since: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

/// A URL an owner registered to be told of its jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub endpoint_id: EndpointId,
    pub owner: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    /// The current secret first; a rotated-out one after it until it expires.
    pub secrets: Vec<EndpointSecret>,
    pub disabled: Option<Disabled>,
    /// When the oldest failure of the current run of failed deliveries was (none after a
    /// success).
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl WebhookEndpoint {
    pub fn new(
        owner: &str,
        url: String,
        events: Option<Vec<EventType>>,
        description: Option<String>,
        secret: String,
        now: DateTime<Utc>,
    ) -> Self {
        let mut events = events.unwrap_or_else(|| EventType::DEFAULT.to_vec());
        events.sort_unstable();
        events.dedup();
        Self {
            endpoint_id: EndpointId::new(),
            owner: owner.to_owned(),
            url,
            events,
            description,
            secrets: vec![EndpointSecret {
                secret,
                expires_at: None,
            }],
            disabled: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    fn next(&self, now: DateTime<Utc>) -> Self {
        Self {
            updated_at: now.max(self.updated_at),
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// Whether deliveries of `event` go to it.
    pub fn wants(&self, event: EventType) -> bool {
        self.disabled.is_none() && (event == EventType::Ping || self.events.contains(&event))
    }

    /// The secrets that sign a delivery at `now`: the current one, and a rotated-out one
    /// within its grace.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .filter(move |s| s.expires_at.is_none_or(|at| at > now))
            .map(|s| s.secret.as_str())
    }

    /// A new current secret; the one it replaces signs alongside for [`OLD_SECRET_GRACE`], as
    /// do those replaced earlier until their own grace ends (at most [`MAX_SECRETS`] in all, the
    /// oldest dropped first), so a rotation sent twice breaks no receiver.
    pub fn rotate(&self, secret: String, now: DateTime<Utc>) -> Self {
        let mut next = self.next(now);
        let replaced = self.secrets.first().map(|s| EndpointSecret {
            secret: s.secret.clone(),
            expires_at: Some(now + OLD_SECRET_GRACE),
        });
        let earlier = self
            .secrets
            .iter()
            .skip(1)
            .filter(|s| s.expires_at.is_some_and(|at| at > now))
            .cloned();
        next.secrets = std::iter::once(EndpointSecret {
            secret,
            expires_at: None,
        })
        .chain(replaced)
        .chain(earlier)
        .take(MAX_SECRETS)
        .collect();
        next
    }

    /// After a delivery's attempt answered `status` (none: a timeout or a refused connection):
    /// a success ends a run of failures, 410 disables the endpoint at once, and a run of
    /// failures as long as [`DISABLE_AFTER_FAILING`] disables it. `None` when nothing changes.
    pub fn after_attempt(&self, status: Option<u16>, now: DateTime<Utc>) -> Option<Self> {
        if self.disabled.is_some() {
            return None;
        }
        let mut next = self.next(now);
        match status {
            Some(200..=299) => {
                self.failing_since?;
                next.failing_since = None;
            }
            Some(410) => next.disabled = Some(Disabled::Gone { at: now }),
            _ => {
                let since = self.failing_since.unwrap_or(now);
                next.failing_since = Some(since);
                if now - since >= DISABLE_AFTER_FAILING {
                    next.disabled = Some(Disabled::Failing { since, at: now });
                } else if self.failing_since.is_some() {
                    return None;
                }
            }
        }
        Some(next)
    }
}

/// What one attempt of a delivery met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered with this status.
    Answered(u16),
    /// No answer within the delivery timeout.
    TimedOut,
    /// No connection: refused, unresolvable, or an address a delivery may not reach (the
    /// reason, in our words).
    Unreachable(String),
}

impl AttemptOutcome {
    /// The HTTP status answered, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Answered(status) => Some(*status),
            Self::TimedOut | Self::Unreachable(_) => None,
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (`next_attempt_at`).
    Pending,
    /// A 2xx answer.
    Delivered,
    /// Every attempt of the schedule failed, or the receiver answered 410 Gone.
    Failed,
}

/// One event for one endpoint, with every attempt to deliver it. Its `event_id` is the
/// `webhook-id` of every attempt, so a receiver drops the duplicates at-least-once brings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub delivery_id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub owner: String,
    pub event_id: String,
    pub event_type: EventType,
    /// The JSON body, as signed and sent on every attempt.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    /// Why the last attempt got no answer, in our words.
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

impl Delivery {
    /// The delivery of event `event_id` to `endpoint`; its id follows from both, so that
    /// announcing one event twice makes one delivery.
    pub fn new(
        endpoint: &WebhookEndpoint,
        event_id: String,
        event_type: EventType,
        payload: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            delivery_id: DeliveryId::for_event(endpoint.endpoint_id, &event_id),
            endpoint_id: endpoint.endpoint_id,
            owner: endpoint.owner.clone(),
            event_id,
            event_type,
            payload,
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status_code: None,
            last_error: None,
            last_attempt_at: None,
            next_attempt_at: Some(now),
            created_at: now,
            version: 1,
        }
    }

    /// After an attempt: delivered on a 2xx, failed on 410 or once `schedule` is spent,
    /// otherwise pending again after the schedule's next wait (`jitter` in [0, 1)).
    pub fn after_attempt(
        &self,
        outcome: &AttemptOutcome,
        schedule: &[Duration],
        jitter: f64,
        now: DateTime<Utc>,
    ) -> Self {
        let attempts = self.attempts + 1;
        let status = outcome.status();
        let wait = retry_delay(schedule, attempts, jitter)
            .and_then(|w| chrono::Duration::from_std(w).ok());
        let (state, next_attempt_at) = match (status, wait) {
            (Some(200..=299), _) => (DeliveryStatus::Delivered, None),
            (Some(410), _) | (_, None) => (DeliveryStatus::Failed, None),
            (_, Some(wait)) => (DeliveryStatus::Pending, Some(now + wait)),
        };
        Self {
            status: state,
            attempts,
            last_status_code: status,
            last_error: match outcome {
                AttemptOutcome::TimedOut => Some("no answer in time".to_owned()),
                AttemptOutcome::Unreachable(why) => Some(why.clone()),
                AttemptOutcome::Answered(_) => None,
            },
            last_attempt_at: Some(now),
            next_attempt_at,
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// Given up without an attempt (`why`: the endpoint was disabled meanwhile).
    pub fn abandon(&self, why: &str, now: DateTime<Utc>) -> Self {
        Self {
            status: DeliveryStatus::Failed,
            last_error: Some(why.to_owned()),
            last_attempt_at: Some(now),
            next_attempt_at: None,
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// An owner's resend: pending now, with the same `event_id` (the attempts so far stay
    /// counted; the schedule starts again from its first wait after this one fails).
    pub fn resend(&self, now: DateTime<Utc>) -> Self {
        Self {
            status: DeliveryStatus::Pending,
            next_attempt_at: Some(now),
            attempts: 0,
            version: self.version + 1,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_over_more_than_a_day_then_stop() {
        assert_eq!(
            retry_delay(&RETRY_SCHEDULE, 0, 0.5),
            None,
            "no wait before the first attempt"
        );
        assert_eq!(
            retry_delay(&RETRY_SCHEDULE, 1, 0.5),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_delay(&RETRY_SCHEDULE, 7, 0.5),
            Some(Duration::from_secs(36_000))
        );
        assert_eq!(retry_delay(&RETRY_SCHEDULE, 8, 0.5), None);
        let shortest: Duration = (1..=7)
            .filter_map(|n| retry_delay(&RETRY_SCHEDULE, n, 0.0))
            .sum();
        assert!(shortest > Duration::from_secs(24 * 3600), "{shortest:?}");
        for n in 1..=7 {
            let (low, high) = (
                retry_delay(&RETRY_SCHEDULE, n, 0.0).unwrap(),
                retry_delay(&RETRY_SCHEDULE, n, 0.999).unwrap(),
            );
            assert!(low < high && high <= RETRY_SCHEDULE[n as usize - 1].mul_f64(1.1));
        }
    }

    fn endpoint(now: DateTime<Utc>) -> WebhookEndpoint {
        WebhookEndpoint::new(
            "alice",
            "https://example.com/hook".into(),
            None,
            None,
            "whsec_new".into(),
            now,
        )
    }

    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_for_a_day() {
        let now = Utc::now();
        let rotated = endpoint(now).rotate("whsec_newer".into(), now);
        assert_eq!(rotated.version, 2);
        assert_eq!(
            rotated.signing_secrets(now).collect::<Vec<_>>(),
            ["whsec_newer", "whsec_new"]
        );
        let later = now + OLD_SECRET_GRACE;
        assert_eq!(
            rotated.signing_secrets(later).collect::<Vec<_>>(),
            ["whsec_newer"]
        );
        // Rotated again within the day (a retried request): every secret a receiver may hold
        // still signs, each until its own grace ends.
        let hour = chrono::Duration::hours(1);
        let again = rotated.rotate("whsec_newest".into(), now + hour);
        assert_eq!(
            again.signing_secrets(now + hour).collect::<Vec<_>>(),
            ["whsec_newest", "whsec_newer", "whsec_new"]
        );
        assert_eq!(
            again.signing_secrets(later).collect::<Vec<_>>(),
            ["whsec_newest", "whsec_newer"]
        );
        let mut many = again;
        for n in 0..10 {
            many = many.rotate(format!("whsec_{n}"), now + hour);
        }
        assert_eq!(many.secrets.len(), MAX_SECRETS);
        assert_eq!(many.secrets[0].secret, "whsec_9");
    }

    #[test]
    fn gone_disables_at_once_and_failing_for_days_disables_too() {
        let now = Utc::now();
        let e = endpoint(now);
        assert!(e.wants(EventType::JobCompleted) && e.wants(EventType::Ping));
        let gone = e.after_attempt(Some(410), now).unwrap();
        assert_eq!(gone.disabled, Some(Disabled::Gone { at: now }));
        assert!(!gone.wants(EventType::JobCompleted));
        assert_eq!(gone.after_attempt(Some(200), now), None);

        let failing = e.after_attempt(Some(500), now).unwrap();
        assert_eq!(failing.failing_since, Some(now));
        assert_eq!(
            failing.after_attempt(None, now + chrono::Duration::days(1)),
            None
        );
        let recovered = failing.after_attempt(Some(204), now).unwrap();
        assert_eq!(recovered.failing_since, None);
        assert_eq!(recovered.after_attempt(Some(200), now), None);
        let end = now + DISABLE_AFTER_FAILING;
        let disabled = failing.after_attempt(None, end).unwrap();
        assert_eq!(
            disabled.disabled,
            Some(Disabled::Failing {
                since: now,
                at: end
            })
        );
    }

    #[test]
    fn a_delivery_keeps_its_id_through_retries_until_delivered_gone_or_spent() {
        let now = Utc::now();
        let e = endpoint(now);
        let d = Delivery::new(
            &e,
            "msg_1".into(),
            EventType::JobCompleted,
            "{}".into(),
            now,
        );
        assert!(d.event_id.starts_with("msg_"));
        let once = d.after_attempt(&AttemptOutcome::Answered(500), &RETRY_SCHEDULE, 0.5, now);
        assert_eq!(
            (once.status, once.attempts, once.next_attempt_at),
            (
                DeliveryStatus::Pending,
                1,
                Some(now + chrono::Duration::seconds(5))
            )
        );
        let twice = once.after_attempt(&AttemptOutcome::TimedOut, &RETRY_SCHEDULE, 0.5, now);
        assert_eq!(twice.last_error.as_deref(), Some("no answer in time"));
        assert_eq!(
            twice.next_attempt_at,
            Some(now + chrono::Duration::minutes(5))
        );
        let done = twice.after_attempt(&AttemptOutcome::Answered(200), &RETRY_SCHEDULE, 0.5, now);
        assert_eq!(
            (done.status, done.attempts, done.next_attempt_at),
            (DeliveryStatus::Delivered, 3, None)
        );
        assert_eq!(done.event_id, d.event_id);
        let gone = d.after_attempt(&AttemptOutcome::Answered(410), &RETRY_SCHEDULE, 0.5, now);
        assert_eq!(gone.status, DeliveryStatus::Failed);
        let mut spent = d.clone();
        for _ in 0..RETRY_SCHEDULE.len() + 1 {
            spent = spent.after_attempt(
                &AttemptOutcome::Unreachable("refused".into()),
                &RETRY_SCHEDULE,
                0.5,
                now,
            );
        }
        assert_eq!((spent.status, spent.attempts), (DeliveryStatus::Failed, 8));
        let again = spent.resend(now);
        assert_eq!(
            (again.status, again.event_id.as_str()),
            (DeliveryStatus::Pending, d.event_id.as_str())
        );
    }

    #[test]
    fn event_types_are_named_as_deliveries_name_them() {
        let names: Vec<String> = EventType::DEFAULT
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "\"job.completed\"",
                "\"job.failed\"",
                "\"job.cancelled\"",
                "\"batch.completed\""
            ]
        );
    }
}
