//! The jobs function: creates generation jobs, lists and cancels them, and tells clients which
//! model types this deployment can run. Its routes call the services of
//! `image2model_shared::app` (`create_job`, `list_jobs`, `cancel_job`) and map their answers.

mod routes;
mod views;

pub use routes::router;

#[cfg(test)]
mod route_tests;
