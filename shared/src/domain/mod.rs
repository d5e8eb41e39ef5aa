//! The domain model: ids, uploaded files, generation jobs with their state machine, batches and
//! the catalog of model types; how whole numbers in JSON bodies are read.

pub mod batch;
pub mod file;
pub mod format;
pub mod ids;
pub mod integer;
pub mod job;
pub mod job_error;
pub mod models;
pub mod webhook;

pub use batch::Batch;
pub use file::{AcceptedImage, FileRejection, FileStatus, UPLOADS_PREFIX, UploadedFile};
pub use format::{Converted, FormatFailure, ModelFormat, RESULTS_PREFIX, StoredFormat, stem_of};
pub use ids::{BatchId, DeliveryId, EndpointId, FileId, InvalidId, JobId};
pub use job::{
    FalRequest, GenerationJob, JobOptions, JobResult, JobStatus, Texture, TransitionError,
};
pub use job_error::{JobError, JobErrorCode};
