//! The webhook store port on the embedded database: endpoints and deliveries as JSON beside the
//! columns the queries filter on; every change a conditional statement SQLite checks.

use super::db::{EmbeddedDb, micros};
use super::store::{backend, from_json, one_row, to_json};
use crate::domain::webhook::{DELIVERY_RETENTION, Delivery, WebhookEndpoint};
use crate::domain::{DeliveryId, EndpointId};
use crate::ports::{StoreError, WebhookStore};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

impl EmbeddedDb {
    /// Writes `body` as `version` of record `id` with `sql`, if the stored version is the one
    /// before ([`StoreError::Conflict`] otherwise).
    async fn put_next_version(
        &self,
        sql: &'static str,
        id: String,
        version: u64,
        body: String,
    ) -> Result<(), StoreError> {
        let changed = self
            .call(move |conn| {
                conn.execute(sql, params![version, body, id, version.saturating_sub(1)])
            })
            .await
            .map_err(backend)?;
        one_row(changed)
    }

    async fn webhook_record<T>(
        &self,
        sql: &'static str,
        id: String,
    ) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.call(move |conn| {
            conn.query_row(sql, [id], |r| r.get::<_, String>(0))
                .optional()?
                .map(|raw| from_json(&raw))
                .transpose()
        })
        .await
        .map_err(backend)
    }
}

#[async_trait]
impl WebhookStore for EmbeddedDb {
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        max_per_owner: usize,
    ) -> Result<(), StoreError> {
        let endpoint = endpoint.clone();
        let inserted = self
            .call(move |conn| {
                let tx = conn.transaction()?;
                let count: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM webhook_endpoints WHERE owner = ?1",
                    [&endpoint.owner],
                    |r| r.get(0),
                )?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_owner {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO webhook_endpoints (endpoint_id, owner, created_at, version, body)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        endpoint.endpoint_id.to_string(),
                        endpoint.owner,
                        micros(endpoint.created_at),
                        endpoint.version,
                        to_json(&endpoint)?,
                    ],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await
            .map_err(backend)?;
        if inserted {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn get_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.webhook_record(
            "SELECT body FROM webhook_endpoints WHERE endpoint_id = ?1",
            id.to_string(),
        )
        .await
    }

    async fn list_endpoints(
        &self,
        owner: Option<&str>,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let owner = owner.map(str::to_owned);
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT body FROM webhook_endpoints WHERE ?1 IS NULL OR owner = ?1
                 ORDER BY created_at, endpoint_id",
            )?;
            stmt.query_map([owner], |r| r.get::<_, String>(0))?
                .map(|raw| from_json(&raw?))
                .collect()
        })
        .await
        .map_err(backend)
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        self.put_next_version(
            "UPDATE webhook_endpoints SET version = ?1, body = ?2
             WHERE endpoint_id = ?3 AND version = ?4",
            endpoint.endpoint_id.to_string(),
            endpoint.version,
            to_json(endpoint).map_err(backend)?,
        )
        .await
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<(), StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1",
                [id.to_string()],
            )?;
            tx.execute(
                "DELETE FROM webhook_endpoints WHERE endpoint_id = ?1",
                [id.to_string()],
            )?;
            tx.commit()
        })
        .await
        .map_err(backend)
    }

    async fn create_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let delivery = delivery.clone();
        let expired = micros(chrono::Utc::now() - DELIVERY_RETENTION);
        let created = self.call(move |conn| {
            // What DynamoDB's `ttl` does on AWS: past their retention, deliveries go.
            conn.execute(
                "DELETE FROM webhook_deliveries WHERE created_at < ?1",
                [expired],
            )?;
            conn.execute(
                "INSERT OR IGNORE INTO webhook_deliveries (delivery_id, endpoint_id, created_at, version, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    delivery.delivery_id.to_string(),
                    delivery.endpoint_id.to_string(),
                    micros(delivery.created_at),
                    delivery.version,
                    to_json(&delivery)?,
                ],
            )
        })
        .await
        .map_err(backend)?;
        if created == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.webhook_record(
            "SELECT body FROM webhook_deliveries WHERE delivery_id = ?1",
            id.to_string(),
        )
        .await
    }

    async fn update_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.put_next_version(
            "UPDATE webhook_deliveries SET version = ?1, body = ?2
             WHERE delivery_id = ?3 AND version = ?4",
            delivery.delivery_id.to_string(),
            delivery.version,
            to_json(delivery).map_err(backend)?,
        )
        .await
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT body FROM webhook_deliveries WHERE endpoint_id = ?1
                 ORDER BY created_at DESC, delivery_id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![endpoint.to_string(), limit], |r| {
                r.get::<_, String>(0)
            })?
            .map(|raw| from_json(&raw?))
            .collect()
        })
        .await
        .map_err(backend)
    }
}
