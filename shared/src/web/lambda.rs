//! Serving a function's routes on Lambda, the one way every HTTP function's `main.rs` does it:
//! logs set up, the configuration read and the adapters built once per instance, the routes
//! wrapped in the common layers ([`super::into_service`]) and run by `lambda_http`, whole or
//! streamed. Behind API Gateway a request is named by the gateway's request id (the access
//! log's `requestId`) unless the client sent a plain one of its own.

use super::buffered::Buffered;
use super::request_id::{REQUEST_ID_HEADER, plain_request_id};
use super::{HttpService, into_service};
use crate::context::AppContext;
use axum::http::HeaderValue;
use bytes::Bytes;
use futures_util::Stream;
use lambda_http::lambda_runtime::{self, FunctionResponse};
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, LambdaEvent, Request, RequestExt, StreamAdapter};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

pub use lambda_http::Error;

/// How a function's answers reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// Buffered whole (behind API Gateway).
    Whole,
    /// Streamed as they are written to a Function URL in `RESPONSE_STREAM` mode (Server-Sent
    /// Events reach the client as they happen); buffered whole, and marked [`Buffered`], to
    /// API Gateway, which cannot stream.
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
        Answers::Whole => {
            let whole = lambda_http::tower::ServiceBuilder::new()
                .map_request(adopt_gateway_request_id)
                .service(service);
            lambda_http::run(whole).await
        }
        Answers::Streamed => {
            lambda_runtime::run(lambda_runtime::service_fn(move |event| {
                answer(service.clone(), event)
            }))
            .await
        }
    }
}

/// Answers one event of a function with [`Answers::Streamed`]: streamed when a function URL
/// asked, else buffered whole.
pub async fn answer(
    service: HttpService,
    event: LambdaEvent<LambdaRequest>,
) -> Result<
    FunctionResponse<
        impl Serialize + use<>,
        impl Stream<Item = Result<Bytes, axum::Error>> + Unpin + Send + use<>,
    >,
    Error,
> {
    let service = lambda_http::tower::ServiceBuilder::new()
        .map_request(adopt_gateway_request_id)
        .service(service);
    if from_function_url(&event.payload) {
        let streamed = StreamAdapter::from(service).oneshot(event).await?;
        Ok(FunctionResponse::StreamingResponse(streamed))
    } else {
        let buffered = lambda_http::tower::ServiceBuilder::new()
            .map_request(|mut req: Request| {
                req.extensions_mut().insert(Buffered);
                req
            })
            .service(service);
        let whole = Adapter::from(buffered).oneshot(event).await?;
        Ok(FunctionResponse::BufferedResponse(whole))
    }
}

/// Whether the event came through a function URL (`<id>.lambda-url.<region>.on.aws`), the one
/// caller that takes a streamed answer.
fn from_function_url(event: &LambdaRequest) -> bool {
    match event {
        LambdaRequest::ApiGatewayV2(request) => request
            .request_context
            .domain_name
            .as_deref()
            .is_some_and(|domain| domain.contains(".lambda-url.")),
        _ => false,
    }
}

/// Names the request by the gateway's request id when the client sent no plain id of its own.
fn adopt_gateway_request_id(mut req: Request) -> Request {
    let own = req.headers().get(REQUEST_ID_HEADER);
    if own
        .and_then(|v| v.to_str().ok())
        .is_some_and(plain_request_id)
    {
        return req;
    }
    let gateway_id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        Some(RequestContext::ApiGatewayV1(context)) => context.request_id.clone(),
        _ => None,
    };
    if let Some(id) = gateway_id.filter(|id| plain_request_id(id))
        && let Ok(value) = HeaderValue::from_str(&id)
    {
        req.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::Request as AxumRequest;
    use axum::routing::get;

    /// A service that answers with whether the request was marked buffered and its id.
    fn echo() -> HttpService {
        let router = Router::new().route(
            "/{*path}",
            get(|req: AxumRequest| async move {
                format!(
                    "buffered={} id={}",
                    req.extensions().get::<Buffered>().is_some(),
                    req.headers()
                        .get(REQUEST_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                )
            }),
        );
        into_service(router, &crate::config::Config::default())
    }

    fn event(
        fixture: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> LambdaEvent<LambdaRequest> {
        let path = format!(
            "{}/../tests/fixtures/events/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        edit(&mut json);
        LambdaEvent::new(
            serde_json::from_value(json).unwrap(),
            lambda_runtime::Context::default(),
        )
    }

    fn body(answer: &impl Serialize) -> String {
        let json = serde_json::to_value(answer).unwrap();
        json["body"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn an_api_gateway_event_is_answered_whole_marked_buffered_and_named_by_the_gateway() {
        let answered = answer(echo(), event("apigw_http_health.json", |_| {}))
            .await
            .unwrap();
        match answered {
            FunctionResponse::BufferedResponse(whole) => {
                assert_eq!(body(&whole), "buffered=true id=JKJaXmPLvHcESHB=");
            }
            FunctionResponse::StreamingResponse(_) => panic!("API Gateway cannot stream"),
        }
        // A plain id of the client's own is kept; one that is not plain gives way.
        for (sent, kept) in [("mine-1", "mine-1"), ("not plain!", "JKJaXmPLvHcESHB=")] {
            let answered = answer(
                echo(),
                event("apigw_http_health.json", |e| {
                    e["headers"]["x-request-id"] = sent.into();
                }),
            )
            .await
            .unwrap();
            let FunctionResponse::BufferedResponse(whole) = answered else {
                panic!("buffered")
            };
            assert_eq!(body(&whole), format!("buffered=true id={kept}"));
        }
    }

    #[tokio::test]
    async fn a_function_url_event_is_streamed_unmarked() {
        let answered = answer(echo(), event("function_url_status.json", |_| {}))
            .await
            .unwrap();
        let FunctionResponse::StreamingResponse(streamed) = answered else {
            panic!("a function URL in RESPONSE_STREAM mode takes a stream")
        };
        let chunks: Vec<Bytes> = futures_util::StreamExt::collect::<Vec<_>>(streamed.stream)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let text = String::from_utf8(chunks.concat()).unwrap();
        assert!(text.starts_with("buffered=false id="), "{text}");
        assert_eq!(streamed.metadata_prelude.status_code, 200);
    }
}
