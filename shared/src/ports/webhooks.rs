//! What the outbound webhooks keep: the endpoints owners register and the deliveries made to
//! them. Every change is conditional on the version read, as for jobs.

use super::store::StoreError;
use crate::domain::webhook::{Delivery, WebhookEndpoint};
use crate::domain::{DeliveryId, EndpointId};
use async_trait::async_trait;

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Registers `endpoint` unless its owner has `max_per_owner` already
    /// ([`StoreError::Conflict`] then).
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        max_per_owner: usize,
    ) -> Result<(), StoreError>;
    async fn get_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// An owner's endpoints (every owner's with `None`), oldest first.
    async fn list_endpoints(&self, owner: Option<&str>)
    -> Result<Vec<WebhookEndpoint>, StoreError>;
    /// Writes `endpoint`, conditional on the stored version being `endpoint.version - 1`.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError>;
    /// Deletes the endpoint and its deliveries.
    async fn delete_endpoint(&self, id: EndpointId) -> Result<(), StoreError>;

    /// Records a new delivery ([`StoreError::Conflict`] when its id is taken: the event was
    /// announced to this endpoint before).
    async fn create_delivery(&self, delivery: &Delivery) -> Result<(), StoreError>;
    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError>;
    /// Writes `delivery`, conditional on the stored version being `delivery.version - 1`.
    async fn update_delivery(&self, delivery: &Delivery) -> Result<(), StoreError>;
    /// An endpoint's newest `limit` deliveries, newest first.
    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;
}
