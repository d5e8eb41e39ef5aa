//! The admin function (admin key only): every job, statistics, retries, deletions, dead letters
//! and cleanup; plus the maintenance that keeps every job moving to an end (the sweeper).

pub mod maintenance;
mod routes;

pub use maintenance::{CleanupReport, MaintenanceError, SweepReport, cleanup, sweep};
pub use routes::router;
