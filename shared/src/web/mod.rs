//! The web layer: what HTTP functions share between extracting a request and sending the
//! response. Errors and their JSON envelope (`error.rs`), the request id (`request_id.rs`), the
//! layers every router is wrapped in (`layers.rs`), extractors (`extract.rs`) with JSON bodies
//! read strictly (`strict_json.rs`), the OpenAPI document's shared parts (`openapi.rs`), authentication
//! (`auth.rs`), rate limiting (`rate_limit.rs`), request bodies that must keep a minimum rate
//! (`read_deadline.rs`), the links a browser follows a task by
//! (`links.rs`), streams asked where answers are buffered (`buffered.rs`) and the response bodies several
//! functions share (`views.rs`). Routes call the application services
//! (`crate::app`) and map their answers; no service knows about HTTP.

pub mod auth;
pub mod buffered;
pub mod error;
pub mod extract;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod layers;
pub mod links;
pub mod openapi;
pub mod rate_limit;
pub mod read_deadline;
pub mod request_id;
pub mod strict_json;
#[cfg(feature = "testing")]
pub mod testing;
pub mod views;

pub use crate::keys::Caller;
pub use auth::Admin;
pub use error::ApiError;
pub use layers::{HttpService, into_service};

use crate::context::AppContext;
use crate::keys::KeyRing;
use axum::extract::FromRef;
use std::sync::Arc;

/// The extractors of [`auth`] find the key ring in the router's state.
impl FromRef<AppContext> for Arc<KeyRing> {
    fn from_ref(ctx: &AppContext) -> Self {
        ctx.keys.clone()
    }
}
