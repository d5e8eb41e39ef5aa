//! The delivery function's event handler: decodes an SQS batch of the deliveries' queue, hands
//! each message to `image2model_shared::app::deliver` (concurrently: one receiver that takes its
//! whole timeout holds up no other) and reports only the failed message ids
//! (`ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures_util::future::join_all;
use image2model_shared::app::deliver::Deliverer;
use image2model_shared::app::work::MessageOutcome;

pub async fn handle_sqs_event(deliverer: &Deliverer, event: SqsEvent) -> SqsBatchResponse {
    let outcomes = join_all(
        event
            .records
            .iter()
            .map(|record| deliverer.handle_message(record.body.as_deref().unwrap_or_default())),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    for (record, outcome) in event.records.into_iter().zip(outcomes) {
        if outcome == MessageOutcome::Retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}
