//! Conversions: a completed job's GLB made into another format once and kept beside it
//! (`results/<job_id>/model.<extension>`), or, when the model holds what the converter cannot
//! read, the reason kept there instead (`...failed.json`) so that it is said on every request
//! without trying again. The work runs on the blocking pool, one decode permit at a time, and
//! refuses a model whose conversion would take more than the decode memory budget.

use super::error::AppError;
use crate::context::AppContext;
use crate::domain::{Converted, FormatFailure, JobId, JobResult, ModelFormat, StoredFormat};
use bytes::Bytes;
use image2model_formats::{FormatError, Scene, obj, stl, usdz};

/// Peak memory of a conversion, as a multiple of the GLB's size: the decoded scene, the written
/// file and the package being assembled. `scripts/bench_formats.sh` measured at most 5.9 (STL of
/// a 536,000-face relief), USDZ 4.1, OBJ 2.2; the finest relief (22.6 MB) converts within the
/// default budget.
const MEMORY_PER_GLB_BYTE: u64 = 7;

/// `glb` (a stored GLB's bytes) in `format`; the GLB itself is never passed here.
fn encode(glb: &[u8], format: ModelFormat, budget: u64) -> Result<Vec<u8>, FormatError> {
    let needed = (glb.len() as u64).saturating_mul(MEMORY_PER_GLB_BYTE);
    if needed > budget {
        return Err(FormatError::TooLarge {
            needed,
            limit: budget,
        });
    }
    let scene = Scene::from_glb(glb)?;
    match format {
        ModelFormat::Glb => Ok(glb.to_vec()),
        ModelFormat::Usdz => usdz::encode(&scene),
        ModelFormat::Obj => obj::encode(&scene),
        ModelFormat::Stl => stl::encode(&scene),
    }
}

/// What storage holds of `format` for job `job_id`: the conversion, its failure, or nothing yet.
pub async fn stored_format(
    ctx: &AppContext,
    job_id: JobId,
    format: ModelFormat,
) -> Result<Option<Converted>, AppError> {
    let key = format.object_key(job_id);
    if let Some(meta) = ctx.storage.head(&key).await? {
        return Ok(Some(Converted::Stored(StoredFormat {
            format,
            object_key: key,
            size: meta.size,
        })));
    }
    let failure_key = format.failure_key(job_id);
    if ctx.storage.head(&failure_key).await?.is_none() {
        return Ok(None);
    }
    let bytes = ctx.storage.get(&failure_key).await?;
    let failure = serde_json::from_slice(&bytes).unwrap_or_else(|_| FormatFailure {
        format,
        reason: "the model could not be converted".to_owned(),
    });
    Ok(Some(Converted::Failed(failure)))
}

/// Converts `glb` (job `job_id`'s model) to `format` and keeps the result, or the reason it
/// cannot be made, beside the GLB.
pub async fn convert_bytes(
    ctx: &AppContext,
    job_id: JobId,
    glb: Bytes,
    format: ModelFormat,
) -> Result<Converted, AppError> {
    let budget = ctx.config.limits.max_decode_bytes;
    let permit = ctx.decodes.acquire().await;
    let encoded = tokio::task::spawn_blocking(move || encode(&glb, format, budget))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(%job_id, %format, error = %e, "a conversion crashed");
            Err(FormatError::Unwritable("the converter stopped".to_owned()))
        });
    drop(permit);
    match encoded {
        Ok(bytes) => {
            let key = format.object_key(job_id);
            let size = bytes.len() as u64;
            ctx.storage
                .put(&key, Bytes::from(bytes), format.content_type())
                .await?;
            tracing::info!(%job_id, %format, size, "model converted");
            Ok(Converted::Stored(StoredFormat {
                format,
                object_key: key,
                size,
            }))
        }
        Err(error) => {
            tracing::warn!(%job_id, %format, %error, "model not convertible");
            let failure = FormatFailure {
                format,
                reason: error.to_string(),
            };
            let json = serde_json::to_vec(&failure).unwrap_or_default();
            ctx.storage
                .put(
                    &format.failure_key(job_id),
                    Bytes::from(json),
                    "application/json",
                )
                .await?;
            Ok(Converted::Failed(failure))
        }
    }
}

/// `result`'s model (job `job_id`'s) in `format`: what is kept if it was made before, made now
/// otherwise.
pub async fn convert(
    ctx: &AppContext,
    job_id: JobId,
    result: &JobResult,
    format: ModelFormat,
) -> Result<Converted, AppError> {
    if format == ModelFormat::Glb {
        return Ok(Converted::Stored(StoredFormat {
            format,
            object_key: result.object_key.clone(),
            size: result.size,
        }));
    }
    if let Some(known) = stored_format(ctx, job_id, format).await? {
        return Ok(known);
    }
    let glb = ctx.storage.get(&result.object_key).await?;
    convert_bytes(ctx, job_id, glb, format).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{context, relief_glb};

    #[tokio::test]
    async fn each_format_is_made_once_kept_beside_the_glb_and_found_again() {
        let t = context();
        let job = JobId::new();
        let glb = relief_glb();
        let result = JobResult {
            object_key: ModelFormat::Glb.object_key(job),
            size: glb.len() as u64,
            ..JobResult::default()
        };
        t.storage
            .put(&result.object_key, glb, "model/gltf-binary")
            .await
            .unwrap();
        for format in ModelFormat::ALL {
            let Converted::Stored(stored) = convert(&t, job, &result, format).await.unwrap() else {
                panic!("{format} did not convert");
            };
            let meta = t.storage.head(&stored.object_key).await.unwrap().unwrap();
            assert_eq!((meta.size, stored.format), (stored.size, format));
            assert!(stored.size > 1000, "{format}: {} bytes", stored.size);
            assert_eq!(
                stored_format(&t, job, format).await.unwrap(),
                Some(Converted::Stored(stored.clone()))
            );
        }
        let kept = t.storage.list(&format!("results/{job}/")).await.unwrap();
        assert_eq!(kept.len(), 4, "{kept:?}");
    }

    #[tokio::test]
    async fn a_model_that_cannot_be_read_fails_per_format_once_and_keeps_its_glb() {
        let t = context();
        let job = JobId::new();
        let result = JobResult {
            object_key: ModelFormat::Glb.object_key(job),
            size: 4,
            ..JobResult::default()
        };
        t.storage
            .put(
                &result.object_key,
                Bytes::from_static(b"glTF"),
                "model/gltf-binary",
            )
            .await
            .unwrap();
        let Converted::Failed(failure) = convert(&t, job, &result, ModelFormat::Stl).await.unwrap()
        else {
            panic!("a broken GLB converted");
        };
        assert!(
            failure.reason.contains("not a readable glTF"),
            "{failure:?}"
        );
        assert_eq!(
            stored_format(&t, job, ModelFormat::Stl).await.unwrap(),
            Some(Converted::Failed(failure))
        );
        assert!(t.storage.head(&result.object_key).await.unwrap().is_some());
        assert_eq!(
            stored_format(&t, job, ModelFormat::Usdz).await.unwrap(),
            None
        );
    }

    #[test]
    fn a_model_bigger_than_the_memory_budget_is_refused_before_it_is_read() {
        let glb = vec![0u8; 1000];
        assert_eq!(
            encode(&glb, ModelFormat::Usdz, 6999),
            Err(FormatError::TooLarge {
                needed: 7000,
                limit: 6999
            })
        );
    }
}
