//! The admin function (admin key only): every job, statistics, retries, deletions, dead letters,
//! maintenance on demand, and the old API's operator routes (disk usage, system health, file
//! lists, a job's cleanup). Its routes call `image2model_shared::app` (`retry_job`,
//! `delete_job`, `purge_task`, `storage_usage`, `sweep`, `cleanup`, `stats`) and map their
//! answers; `logs.rs` answers the old log routes with 410.

mod logs;
mod routes;
mod views;

pub use routes::router;

#[cfg(test)]
mod route_tests;
