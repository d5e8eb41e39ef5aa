//! The worker function's event handler: decodes an SQS batch as Lambda delivers it, hands each
//! message to the work step of `image2model_shared::app::work` (concurrently, so a slow FAL
//! submission does not hold up the quick polls beside it) and reports only the failed message
//! ids (`ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures_util::future::join_all;
use image2model_shared::app::work::{MessageOutcome, Worker};

pub async fn handle_sqs_event(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    let outcomes = join_all(
        event
            .records
            .iter()
            .map(|record| worker.handle_message(record.body.as_deref().unwrap_or_default())),
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
