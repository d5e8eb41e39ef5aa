//! The admin function (admin key only): every job, statistics, retries, deletions, dead letters,
//! and maintenance on demand. Its routes call `image2model_shared::app` (`retry_job`,
//! `delete_job`, `sweep`, `cleanup`, `stats`) and map their answers.

mod routes;

pub use routes::router;
