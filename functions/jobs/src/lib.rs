//! The jobs function: creates generation jobs (the only place a job is born), lists and cancels
//! them, and tells clients which model types this deployment can run.

mod create;
mod routes;

pub use create::{CreateJobRequest, create_batch, create_job, resolve_model, validate_options};
pub use routes::router;
