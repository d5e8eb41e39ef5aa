//! The ingest function's event handler: decodes S3 `ObjectCreated` events and ingests each
//! object with `image2model_shared::app::ingest` (validate the bytes, settle the file, release
//! or fail its jobs).

use aws_lambda_events::event::s3::S3Event;
use image2model_shared::AppContext;
use image2model_shared::app::AppError;
use image2model_shared::app::ingest::{IngestOutcome, ingest_object};

/// S3 event keys are URL-encoded with `+` for spaces.
pub fn decode_s3_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Ingests every record of an S3 event; fails (so Lambda retries) if any record failed.
pub async fn handle_s3_event(
    ctx: &AppContext,
    event: S3Event,
) -> Result<Vec<IngestOutcome>, AppError> {
    let mut outcomes = Vec::with_capacity(event.records.len());
    for record in event.records {
        let Some(raw_key) = record.s3.object.key else {
            continue;
        };
        outcomes.push(ingest_object(ctx, &decode_s3_key(&raw_key)).await?);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_s3_event_keys() {
        assert_eq!(decode_s3_key("uploads/a+b/c%2Bd%3A"), "uploads/a b/c+d:");
    }
}
