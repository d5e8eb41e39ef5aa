//! The work queue on SQS. Redelivery after the visibility timeout and the move to the
//! dead-letter queue after `maxReceiveCount` are SQS's own (the queue's redrive policy).

use super::describe;
use crate::ports::queue::{DeadLetter, QueueDepth, QueueError, ReceivedMessage, WorkQueue};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};
use std::time::Duration;

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: &str, dead_letter_url: &str) -> Self {
        Self {
            client,
            queue_url: queue_url.to_owned(),
            dead_letter_url: dead_letter_url.to_owned(),
        }
    }

    async fn count(&self, url: &str, names: &[QueueAttributeName]) -> Result<Vec<u64>, QueueError> {
        let mut request = self.client.get_queue_attributes().queue_url(url);
        for name in names {
            request = request.attribute_names(name.clone());
        }
        let output = request.send().await.map_err(backend)?;
        let attributes = output.attributes();
        Ok(names
            .iter()
            .map(|name| {
                attributes
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            })
            .collect())
    }
}

fn backend<E, R>(err: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    QueueError::Backend(describe(&err))
}

fn secs(d: Duration, max: u64) -> i32 {
    d.as_secs().min(max) as i32
}

/// How often SQS has delivered `message`, when it says.
fn receive_count(message: &aws_sdk_sqs::types::Message) -> Option<u32> {
    message
        .attributes()?
        .get(&MessageSystemAttributeName::ApproximateReceiveCount)?
        .parse()
        .ok()
}

fn millis_attr(
    message: &aws_sdk_sqs::types::Message,
    name: MessageSystemAttributeName,
) -> DateTime<Utc> {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

#[async_trait]
impl WorkQueue for SqsQueue {
    async fn send(&self, body: &str, delay: Duration) -> Result<String, QueueError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(secs(delay, 900))
            .send()
            .await
            .map_err(backend)?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(secs(visibility, 43_200))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(backend)?;
        Ok(output
            .messages()
            .iter()
            .map(|m| ReceivedMessage {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receive_count: receive_count(m).unwrap_or(1),
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Peeks at the dead-letter queue: messages are received with a zero visibility timeout,
    /// so they stay there for an operator to inspect or redrive.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.dead_letter_url)
            .max_number_of_messages(limit.clamp(1, 10) as i32)
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(backend)?;
        Ok(output
            .messages()
            .iter()
            .map(|m| DeadLetter {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receive_count: receive_count(m).unwrap_or(0),
                sent_at: millis_attr(m, MessageSystemAttributeName::SentTimestamp),
                // SQS does not record when a message moved to the dead-letter queue.
                dead_at: None,
            })
            .collect())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let main = self
            .count(
                &self.queue_url,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                    QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                ],
            )
            .await?;
        let dead = self
            .count(
                &self.dead_letter_url,
                &[QueueAttributeName::ApproximateNumberOfMessages],
            )
            .await?;
        Ok(QueueDepth {
            visible: main[0],
            in_flight: main[1],
            delayed: main[2],
            dead: dead[0],
        })
    }
}
