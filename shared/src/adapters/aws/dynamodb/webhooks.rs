//! The webhook store port on DynamoDB, in the same table: an endpoint is `WHEP#<id>` (listed by
//! owner on `gsi1`, all together on `gsi3`), its owner's count `WHOWNER#<owner>` (raised in the
//! same transaction that creates one, so the limit holds under concurrent requests), a delivery
//! `WHDEL#<id>` (listed by endpoint on `gsi1`, expiring with a `ttl` after
//! [`DELIVERY_RETENTION`]).

use super::{DynamoStore, Item, backend, body, is_conditional_failure, json, key, n, s, time_key};
use crate::domain::webhook::DELIVERY_RETENTION;
use crate::domain::webhook::{Delivery, WebhookEndpoint};
use crate::domain::{DeliveryId, EndpointId};
use crate::ports::{StoreError, WebhookStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

fn endpoint_item(endpoint: &WebhookEndpoint) -> Result<Item, StoreError> {
    let mut item = key(format!("WHEP#{}", endpoint.endpoint_id), "WHEP");
    let order = time_key(endpoint.created_at, endpoint.endpoint_id);
    item.extend([
        ("kind".to_owned(), s("webhook_endpoint")),
        ("owner".to_owned(), s(&endpoint.owner)),
        ("version".to_owned(), n(endpoint.version)),
        ("body".to_owned(), json(endpoint)?),
        (
            "gsi1pk".to_owned(),
            s(format!("WHOWNER#{}", endpoint.owner)),
        ),
        ("gsi1sk".to_owned(), s(&order)),
        ("gsi3pk".to_owned(), s("WHEP")),
        ("gsi3sk".to_owned(), s(order)),
    ]);
    Ok(item)
}

fn delivery_item(delivery: &Delivery) -> Result<Item, StoreError> {
    let mut item = key(format!("WHDEL#{}", delivery.delivery_id), "WHDEL");
    item.extend([
        ("kind".to_owned(), s("webhook_delivery")),
        ("version".to_owned(), n(delivery.version)),
        ("body".to_owned(), json(delivery)?),
        (
            "gsi1pk".to_owned(),
            s(format!("WHDELS#{}", delivery.endpoint_id)),
        ),
        (
            "gsi1sk".to_owned(),
            s(time_key(delivery.created_at, delivery.delivery_id)),
        ),
        (
            "ttl".to_owned(),
            n((delivery.created_at + DELIVERY_RETENTION).timestamp()),
        ),
    ]);
    Ok(item)
}

fn built<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, StoreError> {
    built.map_err(|e| StoreError::Backend(e.to_string()))
}

impl DynamoStore {
    /// Runs `writes` as one transaction; a failed condition is [`StoreError::Conflict`].
    async fn transaction(&self, writes: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_failure(&err) => Err(StoreError::Conflict),
            Err(err) => Err(backend(err)),
        }
    }

    /// The owner's endpoint count changed by `delta` (at most `max` after it, when given).
    fn count_update(
        &self,
        owner: &str,
        delta: i64,
        max: Option<usize>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("WHOWNER#{owner}"), "COUNT")))
            .update_expression("ADD endpoints :delta")
            .expression_attribute_values(":delta", n(delta));
        if let Some(max) = max {
            update = update
                .condition_expression("attribute_not_exists(endpoints) OR endpoints < :max")
                .expression_attribute_values(":max", n(max));
        }
        Ok(TransactWriteItem::builder()
            .update(built(update.build())?)
            .build())
    }

    /// Writes `item` if its stored `version` is `version - 1`.
    async fn put_next_version(&self, item: Item, version: u64) -> Result<(), StoreError> {
        self.conditional_put(
            item,
            "version = :prev",
            Item::from([(":prev".to_owned(), n(version.saturating_sub(1)))]),
        )
        .await
    }
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        max_per_owner: usize,
    ) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(endpoint_item(endpoint)?))
            .condition_expression("attribute_not_exists(pk)");
        self.transaction(vec![
            self.count_update(&endpoint.owner, 1, Some(max_per_owner))?,
            TransactWriteItem::builder()
                .put(built(put.build())?)
                .build(),
        ])
        .await
    }

    async fn get_endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.get_record(format!("WHEP#{id}"), "WHEP").await
    }

    async fn list_endpoints(
        &self,
        owner: Option<&str>,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let items = match owner {
            Some(owner) => {
                self.query_all(
                    "gsi1",
                    "gsi1pk",
                    format!("WHOWNER#{owner}"),
                    None,
                    true,
                    usize::MAX,
                )
                .await?
            }
            None => {
                self.query_all("gsi3", "gsi3pk", "WHEP".to_owned(), None, true, usize::MAX)
                    .await?
            }
        };
        items.iter().map(body).collect()
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        self.put_next_version(endpoint_item(endpoint)?, endpoint.version)
            .await
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<(), StoreError> {
        let Some(endpoint) = self.get_endpoint(id).await? else {
            return Ok(());
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("WHEP#{id}"), "WHEP")))
            .condition_expression("attribute_exists(pk)");
        match self
            .transaction(vec![
                TransactWriteItem::builder()
                    .delete(built(delete.build())?)
                    .build(),
                self.count_update(&endpoint.owner, -1, None)?,
            ])
            .await
        {
            // Deleted meanwhile by another request, which counted it down.
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(other) => return Err(other),
        }
        let deliveries = self
            .query_all(
                "gsi1",
                "gsi1pk",
                format!("WHDELS#{id}"),
                None,
                true,
                usize::MAX,
            )
            .await?;
        for item in deliveries {
            if let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) {
                self.delete(pk.clone(), "WHDEL").await?;
            }
        }
        Ok(())
    }

    async fn create_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.conditional_put(
            delivery_item(delivery)?,
            "attribute_not_exists(pk)",
            Item::new(),
        )
        .await
    }

    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.get_record(format!("WHDEL#{id}"), "WHDEL").await
    }

    async fn update_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.put_next_version(delivery_item(delivery)?, delivery.version)
            .await
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.query_all(
            "gsi1",
            "gsi1pk",
            format!("WHDELS#{endpoint}"),
            None,
            false,
            limit,
        )
        .await?
        .iter()
        .map(body)
        .collect()
    }
}
