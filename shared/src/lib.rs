//! Everything two or more image2model functions use, grouped by layer:
//!
//! - `domain/`: ids, files, jobs and their state machine, batches, the model catalog;
//! - `validation/`: image bytes and filenames, never trusted by extension;
//! - `ports/`: the traits the services talk to (store, object storage, queue, generator);
//! - `adapters/`: the ports on this machine (`embedded/`) and on AWS (`aws/`);
//! - `builtin_generator/` and `fal/`: how models are made, here and at FAL.AI;
//! - `app/`: the application services, one file per use case;
//! - `web/`: the HTTP layer of the functions that serve routes;
//! - `jwt.rs`: sign-in with an OpenID Connect provider's tokens;
//! - `config.rs`, `keys.rs`, `context.rs`, `host.rs`, `metrics.rs`, `telemetry.rs`, `shutdown.rs`.
//!
//! Lower layers never import higher ones (`tests/architecture.rs` checks it).

pub mod adapters;
pub mod app;
pub mod builtin_generator;
pub mod config;
pub mod context;
pub mod domain;
pub mod fal;
pub mod host;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod ports;
pub mod shutdown;
pub mod telemetry;
pub mod validation;
pub mod web;
pub mod webhooks;

pub use app::AppError;
pub use context::AppContext;
pub use web::ApiError;
