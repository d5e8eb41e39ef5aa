//! Everything two or more image2model functions use, grouped by layer:
//!
//! - `domain/`: ids, files, jobs and their state machine, batches, the model catalog;
//! - `validation/`: image bytes and filenames, never trusted by extension;
//! - `ports/`: the traits the services talk to (store, object storage, queue, generator, FAL's
//!   queue);
//! - `adapters/`: the ports on this machine (`embedded/`), on AWS (`aws/`) and FAL over HTTPS;
//! - `builtin_generator/` and `fal/`: how models are made, here and at FAL.AI;
//! - `context.rs`: what every service gets (the configuration, the keys, the ports);
//! - `app/`: the application services, one file per use case;
//! - `wiring.rs`: which adapters run, chosen from the configuration;
//! - `web/`: the HTTP layer of the functions that serve routes, and serving it on Lambda;
//! - `jwt.rs`, `jwks.rs`: sign-in with an OpenID Connect provider's tokens, and the one cache of
//!   a provider's published keys;
//! - `config.rs`, `keys.rs`, `host.rs`, `metrics.rs`, `telemetry.rs`, `shutdown.rs`.
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
pub mod issued_tokens;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod ports;
pub mod rate_window;
pub mod shutdown;
pub mod telemetry;
pub mod validation;
pub mod web;
pub mod webhooks;
pub mod wiring;

pub use app::AppError;
pub use context::AppContext;
pub use web::ApiError;
