//! The generator: turns an image into a 3D model (glTF binary), reporting progress as it goes.

use async_trait::async_trait;
use bytes::Bytes;

#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// The input cannot produce a model; retrying will not help.
    #[error("{message}")]
    InvalidInput { code: &'static str, message: String },
    /// The model type is not served by this generator.
    #[error("model type {0:?} is not available")]
    Unavailable(String),
    /// Something went wrong that a later attempt may not meet.
    #[error("generation failed: {0}")]
    Transient(String),
}

impl GeneratorError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { code, .. } => code,
            Self::Unavailable(_) => "MODEL_UNAVAILABLE",
            Self::Transient(_) => "GENERATION_FAILED",
        }
    }
}

/// Receives progress (0..100) and a human message while a model is generated.
#[async_trait]
pub trait ProgressReporter: Send + Sync {
    async fn report(&self, progress: u8, message: &str);
}

/// A generated model, ready to be stored.
#[derive(Debug, Clone)]
pub struct GeneratedModel {
    pub bytes: Bytes,
    pub content_type: &'static str,
    pub file_extension: &'static str,
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
