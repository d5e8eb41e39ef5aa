//! The generator: turns an image into a 3D model (glTF binary), reporting progress as it goes.

use crate::domain::JobErrorCode;
use async_trait::async_trait;
use bytes::Bytes;

#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// The input cannot produce a model; retrying will not help.
    #[error("{message}")]
    InvalidInput { code: JobErrorCode, message: String },
    /// The model type is not served by this generator.
    #[error("model type {0:?} is not available")]
    Unavailable(String),
    /// Something went wrong that a later attempt may not meet.
    #[error("generation failed: {0}")]
    Transient(String),
}

impl GeneratorError {
    /// A generator that panicked on this input: it would panic again, so the job fails (once,
    /// with `GENERATOR_CRASHED`) instead of being retried.
    pub fn crashed() -> Self {
        let code = JobErrorCode::GeneratorCrashed;
        Self::InvalidInput {
            code,
            message: code.meaning().to_owned(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    pub fn code(&self) -> JobErrorCode {
        match self {
            Self::InvalidInput { code, .. } => *code,
            Self::Unavailable(_) => JobErrorCode::ModelUnavailable,
            Self::Transient(_) => JobErrorCode::GenerationFailed,
        }
    }
}

/// Receives progress (0..100) and a human message while a model is generated.
#[async_trait]
pub trait ProgressReporter: Send + Sync {
    async fn report(&self, progress: u8, message: &str);
}

/// A picture of a model: its bytes and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewImage {
    pub bytes: Bytes,
    pub content_type: &'static str,
    pub extension: &'static str,
}

impl PreviewImage {
    pub fn png(bytes: Bytes) -> Self {
        Self {
            bytes,
            content_type: "image/png",
            extension: "png",
        }
    }

    /// `bytes` if they are a PNG, JPEG or WebP image (by their signature), else `None`.
    pub fn sniffed(bytes: Bytes) -> Option<Self> {
        let (content_type, extension) = match bytes.as_ref() {
            [0x89, b'P', b'N', b'G', ..] => ("image/png", "png"),
            [0xFF, 0xD8, 0xFF, ..] => ("image/jpeg", "jpg"),
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => ("image/webp", "webp"),
            _ => return None,
        };
        Some(Self {
            bytes,
            content_type,
            extension,
        })
    }
}

/// A generated model, ready to be stored.
#[derive(Debug, Clone)]
pub struct GeneratedModel {
    pub bytes: Bytes,
    pub content_type: &'static str,
    pub file_extension: &'static str,
    /// A picture of the model, when the generator renders one.
    pub preview: Option<PreviewImage>,
}

/// What the generator is asked to do.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub model_type: String,
    pub options: crate::domain::JobOptions,
    pub image: Bytes,
}

#[async_trait]
pub trait Generator: Send + Sync {
    /// Whether this generator serves `model_type`.
    fn supports(&self, model_type: &str) -> bool;
    async fn generate(
        &self,
        request: GenerationRequest,
        progress: &dyn ProgressReporter,
    ) -> Result<GeneratedModel, GeneratorError>;
}
