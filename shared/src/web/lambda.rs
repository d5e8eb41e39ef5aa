//! Serving a function's routes on Lambda, the one way every HTTP function's `main.rs` does it:
//! logs set up, the configuration read and the adapters built once per instance, the routes
//! wrapped in the common layers ([`super::into_service`]) and run by `lambda_http`, whole or
//! streamed.

use super::into_service;
use crate::context::AppContext;
use utoipa_axum::router::OpenApiRouter;

pub use lambda_http::Error;

/// How a function's answers reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// Buffered whole (behind API Gateway).
    Whole,
    /// Streamed as they are written (a Function URL in `RESPONSE_STREAM` mode: Server-Sent
    /// Events reach the client as they happen).
    Streamed,
}

/// Serves the routes `routes` builds from the instance's context until Lambda stops the
/// instance; a context or routes that cannot be built end the instance at its start.
pub async fn serve<E>(
    routes: impl FnOnce(&AppContext) -> Result<OpenApiRouter<AppContext>, E>,
    answers: Answers,
) -> Result<(), Error>
where
    E: Into<Error>,
{
    crate::telemetry::init();
    let ctx = crate::wiring::from_env().await?;
    let (router, _) = routes(&ctx).map_err(Into::into)?.split_for_parts();
    let service = into_service(router.with_state(ctx.clone()), &ctx.config);
    match answers {
        Answers::Whole => lambda_http::run(service).await,
        Answers::Streamed => lambda_http::run_with_streaming_response(service).await,
    }
}
