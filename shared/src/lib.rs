//! Everything two or more image2model functions use: the domain model, validation, the error
//! envelope, auth and rate limiting, configuration, the ports (traits) with their embedded
//! adapters, and the HTTP layers every function's router is wrapped in.

pub mod access;
pub mod adapters;
pub mod auth;
pub mod config;
pub mod context;
pub mod domain;
pub mod error;
pub mod extract;
pub mod fal;
pub mod http;
pub mod listing;
pub mod metrics;
pub mod pipeline;
pub mod ports;
pub mod rate_limit;
pub mod telemetry;
pub mod validation;

pub use context::AppContext;
pub use error::ApiError;
