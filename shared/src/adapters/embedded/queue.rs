//! The queue port on the embedded database, with SQS's semantics: delays, visibility timeouts,
//! receipts valid for one delivery, receive counts and a dead-letter table. The database holds
//! two queues, as a deployment has two SQS queues: the work queue (`queue`, `dead_letters`) and
//! the webhook deliveries' (`delivery_queue`, `delivery_dead_letters`).

use super::db::{EmbeddedDb, from_micros, micros};
use crate::ports::queue::{DeadLetter, QueueDepth, QueueError, ReceivedMessage, WorkQueue};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::params;
use std::time::Duration;

fn queue_backend(err: rusqlite::Error) -> QueueError {
    QueueError::Backend(err.to_string())
}

/// One queue of the embedded database: its table and its dead letters' table.
#[derive(Clone)]
pub struct EmbeddedQueue {
    db: EmbeddedDb,
    table: &'static str,
    dead: &'static str,
}

impl EmbeddedDb {
    /// The work queue (job steps for the worker).
    pub fn work_queue(&self) -> EmbeddedQueue {
        EmbeddedQueue {
            db: self.clone(),
            table: "queue",
            dead: "dead_letters",
        }
    }

    /// The webhook deliveries' queue.
    pub fn delivery_queue(&self) -> EmbeddedQueue {
        EmbeddedQueue {
            db: self.clone(),
            table: "delivery_queue",
            dead: "delivery_dead_letters",
        }
    }
}

#[async_trait]
impl WorkQueue for EmbeddedQueue {
    async fn send(&self, body: &str, delay: Duration) -> Result<String, QueueError> {
        let id = uuid::Uuid::new_v4().to_string();
        let body = body.to_owned();
        let now = Utc::now();
        let visible = now + chrono::Duration::from_std(delay).unwrap_or_default();
        let message_id = id.clone();
        let sql = format!(
            "INSERT INTO {} (message_id, body, sent_at, visible_at, receive_count, receipt) VALUES (?1, ?2, ?3, ?4, 0, NULL)",
            self.table
        );
        self.db
            .call(move |conn| {
                conn.execute(
                    &sql,
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
        let max_receives = self.db.max_receives;
        let (table, dead) = (self.table, self.dead);
        let now = Utc::now();
        let hidden_until = micros(now + chrono::Duration::from_std(visibility).unwrap_or_default());
        self.db.call(move |conn| {
            let tx = conn.transaction()?;
            let candidates: Vec<(String, String, i64, u32)> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT message_id, body, sent_at, receive_count FROM {table} WHERE visible_at <= ?1 ORDER BY visible_at LIMIT ?2",
                ))?;
                stmt.query_map(params![micros(now), (max.max(1) * 4) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            let mut received = Vec::new();
            for (id, body, sent_at, count) in candidates {
                if count >= max_receives {
                    tx.execute(
                        &format!("INSERT OR REPLACE INTO {dead} (message_id, body, receive_count, sent_at, dead_at) VALUES (?1, ?2, ?3, ?4, ?5)"),
                        params![id, body, count, sent_at, micros(now)],
                    )?;
                    tx.execute(&format!("DELETE FROM {table} WHERE message_id = ?1"), [&id])?;
                    continue;
                }
                if received.len() == max {
                    continue;
                }
                let receipt = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    &format!("UPDATE {table} SET receive_count = receive_count + 1, visible_at = ?1, receipt = ?2 WHERE message_id = ?3"),
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
        let sql = format!("DELETE FROM {} WHERE receipt = ?1", self.table);
        let changed = self
            .db
            .call(move |conn| conn.execute(&sql, [receipt_owned]))
            .await
            .map_err(queue_backend)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(QueueError::StaleReceipt(receipt.to_owned()))
        }
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let sql = format!(
            "SELECT message_id, body, receive_count, sent_at, dead_at FROM {} ORDER BY dead_at DESC LIMIT ?1",
            self.dead
        );
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare(&sql)?;
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
        let (table, dead) = (self.table, self.dead);
        let sql = format!(
            "SELECT
               (SELECT COUNT(*) FROM {table} WHERE visible_at <= ?1),
               (SELECT COUNT(*) FROM {table} WHERE visible_at > ?1 AND receipt IS NOT NULL),
               (SELECT COUNT(*) FROM {table} WHERE visible_at > ?1 AND receipt IS NULL),
               (SELECT COUNT(*) FROM {dead})"
        );
        self.db
            .call(move |conn| {
                conn.query_row(&sql, [now], |r| {
                    Ok(QueueDepth {
                        visible: r.get::<_, i64>(0)?.max(0) as u64,
                        in_flight: r.get::<_, i64>(1)?.max(0) as u64,
                        delayed: r.get::<_, i64>(2)?.max(0) as u64,
                        dead: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })
            })
            .await
            .map_err(queue_backend)
    }
}
