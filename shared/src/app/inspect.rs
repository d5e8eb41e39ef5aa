//! Image validation as the services run it: off the async runtime (on the blocking pool) and
//! under one of the decode permits, so that a burst of uploads (decompression bombs included)
//! neither stalls other requests nor takes more memory than the permits allow.

use crate::context::AppContext;
use crate::domain::AcceptedImage;
use crate::validation::{ImageRejection, inspect_image};
use bytes::Bytes;

/// Validates `bytes` completely (see `validation::image`).
pub async fn inspect(ctx: &AppContext, bytes: Bytes) -> Result<AcceptedImage, ImageRejection> {
    let limits = ctx.config.image_limits();
    // The semaphore is never closed, so a permit always comes.
    let _permit = ctx.decodes.acquire().await.ok();
    tokio::task::spawn_blocking(move || inspect_image(&bytes, limits))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "image validation task failed");
            Err(ImageRejection::Corrupt {
                reason: "the image could not be validated".to_owned(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{context_with, png};
    use std::time::Duration;

    #[tokio::test]
    async fn validation_waits_for_a_decode_permit() {
        let t = context_with(|c| c.limits.max_concurrent_decodes = 1);
        let held = t.decodes.clone().acquire_owned().await.unwrap();
        let bytes = Bytes::from(png(8, 8));
        let waiting = tokio::spawn({
            let ctx = t.ctx.clone();
            async move { inspect(&ctx, bytes).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "no permit, no decode");
        drop(held);
        let image = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("a permit came")
            .unwrap()
            .unwrap();
        assert_eq!((image.width, image.height), (8, 8));
    }
}
