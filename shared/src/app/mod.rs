//! The application services: one file per use case, each a plain async function (or, for the
//! worker, a small struct) over the ports in [`AppContext`](crate::context::AppContext), with no
//! HTTP in it. Routes and Lambda event handlers call these and only map their answers.
//!
//! | use case | file |
//! |---|---|
//! | announce uploads, sign where the bytes go | `presign_upload.rs` |
//! | store uploads that came with the request (single and batch) | `direct_upload.rs` |
//! | validate an uploaded object; release or fail the jobs waiting for it | `ingest.rs` |
//! | validate image bytes off the runtime, within the decode permits | `inspect.rs` |
//! | create a job (model, options, quota, idempotency) or a batch of jobs | `create_job.rs` |
//! | hand a job to the worker when its file is ready | `enqueue.rs` |
//! | change a job conditionally, fail a job | `job_update.rs` |
//! | claim, generate, complete or retry a job (the worker) | `work/` |
//! | the FAL lifecycle's decisions | `work/fal_decision.rs` |
//! | a verified FAL webhook: ask the worker to look | `fal_webhook.rs` |
//! | where a task stands; a token that lets a browser follow one task | `task_status.rs`, `status_token.rs` |
//! | list, cancel, download (in any format: made at once or asked of the worker) | `list_jobs.rs`, `cancel_job.rs`, `download.rs` |
//! | a model made into another format once, kept beside it (or why it cannot be) | `convert.rs` |
//! | an administrator's retry and deletion; a task removed with its files | `retry_job.rs`, `delete_job.rs`, `purge_task.rs` |
//! | keep jobs moving, delete expired data | `sweep.rs`, `cleanup.rs`, `maintenance.rs` |
//! | readiness and figures; what storage holds | `health.rs`, `stats.rs`, `storage_usage.rs` |
//! | owners' webhook endpoints: register, list, rotate the secret, delete | `webhook_endpoints.rs` |
//! | who may see what | `access.rs` |
//! | the services' one error | `error.rs` |

pub mod access;
pub mod cancel_job;
pub mod cleanup;
pub mod convert;
pub mod create_job;
pub mod delete_job;
pub mod deliver;
pub mod direct_upload;
pub mod download;
pub mod enqueue;
pub mod error;
pub mod fal_webhook;
pub mod health;
pub mod ingest;
pub mod inspect;
pub mod job_update;
pub mod job_view;
pub mod list_jobs;
pub mod maintenance;
pub mod presign_upload;
pub mod purge_task;
pub mod retry_job;
pub mod stats;
pub mod status_token;
pub mod storage_usage;
pub mod sweep;
pub mod task_status;
pub mod webhook_endpoints;
pub mod webhook_events;
pub mod work;

/// Test support: the services' unit tests, and (feature `testing`) the function crates' route
/// tests.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::AppError;
