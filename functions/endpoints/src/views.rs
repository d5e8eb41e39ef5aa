//! What the webhook endpoints routes take and answer: an endpoint as its owner sees it (never
//! its secrets, but at registration and rotation the new one, once), and its deliveries.

use chrono::{DateTime, Utc};
use image2model_shared::app::webhook_endpoints::{MAX_DESCRIPTION, NewEndpoint, WithSecret};
use image2model_shared::domain::webhook::{
    Delivery, DeliveryStatus, Disabled, EventType, WebhookEndpoint,
};
use image2model_shared::webhooks::target::MAX_URL_LENGTH;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An event an endpoint can ask for (`ping` goes to every endpoint, from the test route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
pub enum EndpointEvent {
    #[serde(rename = "job.completed")]
    JobCompleted,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.cancelled")]
    JobCancelled,
    #[serde(rename = "batch.completed")]
    BatchCompleted,
}

impl From<EndpointEvent> for EventType {
    fn from(e: EndpointEvent) -> Self {
        match e {
            EndpointEvent::JobCompleted => Self::JobCompleted,
            EndpointEvent::JobFailed => Self::JobFailed,
            EndpointEvent::JobCancelled => Self::JobCancelled,
            EndpointEvent::BatchCompleted => Self::BatchCompleted,
        }
    }
}

/// An endpoint to register.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterEndpoint {
    /// Where deliveries are POSTed: an `https` URL whose host is a public address
    /// (`WEBHOOK_ALLOW_PRIVATE` also allows `http` and private addresses, for local development).
    #[schema(
        max_length = 2048,
        pattern = "^https?://",
        example = "https://example.com/hooks/image2model"
    )]
    pub url: String,
    /// The events wanted; every one when absent (or null).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 4)]
    pub events: Option<Vec<EndpointEvent>>,
    /// A note for the owner (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

impl From<RegisterEndpoint> for NewEndpoint {
    fn from(r: RegisterEndpoint) -> Self {
        Self {
            url: r.url,
            events: r
                .events
                .map(|events| events.into_iter().map(EventType::from).collect()),
            description: r.description,
        }
    }
}

// The schema's limits are the service's.
const _: () = assert!(MAX_URL_LENGTH == 2048 && MAX_DESCRIPTION == 500);

/// Whether an endpoint receives deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    Enabled,
    /// No longer: `disabled_reason` says why.
    Disabled,
}

/// Why an endpoint was disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// The receiver answered 410 Gone.
    Gone,
    /// Every delivery failed for five days.
    Failing,
}

/// An owner's webhook endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    #[schema(value_type = uuid::Uuid)]
    pub endpoint_id: image2model_shared::domain::EndpointId,
    pub owner: String,
    pub url: String,
    pub events: Vec<EventType>,
    #[schema(required = true)]
    pub description: Option<String>,
    pub state: EndpointState,
    #[schema(required = true)]
    pub disabled_reason: Option<DisabledReason>,
    #[schema(required = true)]
    pub disabled_at: Option<DateTime<Utc>>,
    /// When the current run of failed deliveries began (null after a success).
    #[schema(required = true)]
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret replaced by the last rotation still signs beside the new one.
    #[schema(required = true)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&WebhookEndpoint> for EndpointView {
    fn from(e: &WebhookEndpoint) -> Self {
        let (reason, at) = match e.disabled {
            None => (None, None),
            Some(Disabled::Gone { at }) => (Some(DisabledReason::Gone), Some(at)),
            Some(Disabled::Failing { at, .. }) => (Some(DisabledReason::Failing), Some(at)),
        };
        Self {
            endpoint_id: e.endpoint_id,
            owner: e.owner.clone(),
            url: e.url.clone(),
            events: e.events.clone(),
            description: e.description.clone(),
            state: if reason.is_some() {
                EndpointState::Disabled
            } else {
                EndpointState::Enabled
            },
            disabled_reason: reason,
            disabled_at: at,
            failing_since: e.failing_since,
            previous_secret_expires_at: e.secrets.iter().skip(1).find_map(|s| s.expires_at),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint with its signing secret, shown this once (at registration and rotation).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The secret deliveries are signed with (`whsec_` and base64), as the Standard Webhooks
    /// libraries take it.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

impl From<&WithSecret> for EndpointWithSecret {
    fn from(w: &WithSecret) -> Self {
        Self {
            endpoint: EndpointView::from(&w.endpoint),
            secret: w.secret.clone(),
        }
    }
}

/// The caller's endpoints (every owner's for the admin key), oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointView>,
}

/// One event to one endpoint, with its attempts so far.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    #[schema(value_type = uuid::Uuid)]
    pub delivery_id: image2model_shared::domain::DeliveryId,
    #[schema(value_type = uuid::Uuid)]
    pub endpoint_id: image2model_shared::domain::EndpointId,
    /// The `webhook-id` of every attempt: a receiver drops a delivery whose id it has seen.
    pub event_id: String,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    /// Attempts made (since the last resend).
    pub attempts: u32,
    /// What the receiver answered last (null: no answer).
    #[schema(required = true)]
    pub last_status_code: Option<u16>,
    /// Why the last attempt got no answer.
    #[schema(required = true)]
    pub last_error: Option<String>,
    #[schema(required = true)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due, while pending.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            delivery_id: d.delivery_id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id.clone(),
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
        }
    }
}

/// An endpoint's newest deliveries, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

/// How many deliveries to list.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// 1 to 100; 20 when absent.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}
