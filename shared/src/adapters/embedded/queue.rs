//! The work-queue port on the embedded database, with SQS's semantics: delays, visibility
//! timeouts, receipts valid for one delivery, receive counts and a dead-letter table.

use super::db::{EmbeddedDb, from_micros, micros};
use crate::ports::queue::{DeadLetter, QueueDepth, QueueError, ReceivedMessage, WorkQueue};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::params;
use std::time::Duration;

fn queue_backend(err: rusqlite::Error) -> QueueError {
    QueueError::Backend(err.to_string())
}

#[async_trait]
impl WorkQueue for EmbeddedDb {
    async fn send(&self, body: &str, delay: Duration) -> Result<String, QueueError> {
        let id = uuid::Uuid::new_v4().to_string();
        let body = body.to_owned();
        let now = Utc::now();
        let visible = now + chrono::Duration::from_std(delay).unwrap_or_default();
        let message_id = id.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO queue (message_id, body, sent_at, visible_at, receive_count, receipt) VALUES (?1, ?2, ?3, ?4, 0, NULL)",
                params![message_id, body, micros(now), micros(visible)],
            )
        })
        .await
        .map_err(queue_backend)?;
        Ok(id)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let max_receives = self.max_receives;
        let now = Utc::now();
        let hidden_until = micros(now + chrono::Duration::from_std(visibility).unwrap_or_default());
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let candidates: Vec<(String, String, i64, u32)> = {
                let mut stmt = tx.prepare(
                    "SELECT message_id, body, sent_at, receive_count FROM queue WHERE visible_at <= ?1 ORDER BY visible_at LIMIT ?2",
                )?;
                stmt.query_map(params![micros(now), (max.max(1) * 4) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            let mut received = Vec::new();
            for (id, body, sent_at, count) in candidates {
                if count >= max_receives {
                    tx.execute(
                        "INSERT OR REPLACE INTO dead_letters (message_id, body, receive_count, sent_at, dead_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, body, count, sent_at, micros(now)],
                    )?;
                    tx.execute("DELETE FROM queue WHERE message_id = ?1", [&id])?;
                    continue;
                }
                if received.len() == max {
                    continue;
                }
                let receipt = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "UPDATE queue SET receive_count = receive_count + 1, visible_at = ?1, receipt = ?2 WHERE message_id = ?3",
                    params![hidden_until, receipt, id],
                )?;
                received.push(ReceivedMessage { message_id: id, receipt, body, receive_count: count + 1 });
            }
            tx.commit()?;
            Ok(received)
        })
        .await
        .map_err(queue_backend)
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let receipt_owned = receipt.to_owned();
        let changed = self
            .call(move |conn| conn.execute("DELETE FROM queue WHERE receipt = ?1", [receipt_owned]))
            .await
            .map_err(queue_backend)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(QueueError::StaleReceipt(receipt.to_owned()))
        }
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT message_id, body, receive_count, sent_at, dead_at FROM dead_letters ORDER BY dead_at DESC LIMIT ?1",
            )?;
            stmt.query_map([limit as i64], |r| {
                Ok(DeadLetter {
                    message_id: r.get(0)?,
                    body: r.get(1)?,
                    receive_count: r.get(2)?,
                    sent_at: from_micros(r.get(3)?),
                    dead_at: Some(from_micros(r.get(4)?)),
                })
            })?
            .collect()
        })
        .await
        .map_err(queue_backend)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let now = micros(Utc::now());
        self.call(move |conn| {
            conn.query_row(
                "SELECT
                   (SELECT COUNT(*) FROM queue WHERE visible_at <= ?1),
                   (SELECT COUNT(*) FROM queue WHERE visible_at > ?1 AND receipt IS NOT NULL),
                   (SELECT COUNT(*) FROM queue WHERE visible_at > ?1 AND receipt IS NULL),
                   (SELECT COUNT(*) FROM dead_letters)",
                [now],
                |r| {
                    Ok(QueueDepth {
                        visible: r.get::<_, i64>(0)?.max(0) as u64,
                        in_flight: r.get::<_, i64>(1)?.max(0) as u64,
                        delayed: r.get::<_, i64>(2)?.max(0) as u64,
                        dead: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                },
            )
        })
        .await
        .map_err(queue_backend)
    }
}
