//! HTTP routes of the webhook endpoints function, each with its OpenAPI operation. Anyone else's
//! endpoint or delivery reads as not found; the admin key sees every owner's.

use crate::views::{
    DeliveryList, DeliveryQuery, DeliveryView, EndpointList, EndpointView, EndpointWithSecret,
    RegisterEndpoint,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use image2model_shared::AppContext;
use image2model_shared::app::webhook_endpoints::{
    delete_endpoint, list_endpoints, owned_endpoint, register, rotate_secret,
};
use image2model_shared::app::webhook_events::{list_deliveries, ping, resend};
use image2model_shared::domain::{DeliveryId, EndpointId};
use image2model_shared::web::extract::{ApiJson, ApiQuery, IdParam};
use image2model_shared::web::openapi::ApiErrors;
use image2model_shared::web::rate_limit::limited;
use image2model_shared::web::{ApiError, Caller};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router(ctx: &AppContext) -> OpenApiRouter<AppContext> {
    // What makes a delivery (a ping, a resend) or an endpoint counts against the key's rate
    // limit, as uploads and jobs do: no owner can fill the deliveries' queue for nothing.
    OpenApiRouter::new()
        .routes(limited(routes!(create), ctx))
        .routes(routes!(list))
        .routes(routes!(show, remove))
        .routes(routes!(rotate))
        .routes(limited(routes!(test), ctx))
        .routes(routes!(deliveries))
        .routes(limited(routes!(retry), ctx))
}

/// Registers an endpoint for the caller's events. The answer holds its signing secret, shown
/// this once.
#[utoipa::path(
    post, path = "/api/v1/webhooks/endpoints", tag = "webhook-endpoints", operation_id = "create_webhook_endpoint",
    request_body = RegisterEndpoint,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = EndpointWithSecret, description = "The endpoint and its secret", links(
            ("GetEndpoint" = (operation_id = "get_webhook_endpoint", parameters(("endpoint_id" = "$response.body#/endpoint_id")))),
            ("TestEndpoint" = (operation_id = "test_webhook_endpoint", parameters(("endpoint_id" = "$response.body#/endpoint_id")))),
            ("EndpointDeliveries" = (operation_id = "list_webhook_deliveries", parameters(("endpoint_id" = "$response.body#/endpoint_id")))),
            ("RotateSecret" = (operation_id = "rotate_webhook_secret", parameters(("endpoint_id" = "$response.body#/endpoint_id")))),
            ("DeleteEndpoint" = (operation_id = "delete_webhook_endpoint", parameters(("endpoint_id" = "$response.body#/endpoint_id")))),
        )),
        ApiErrors,
    ),
)]
async fn create(
    State(ctx): State<AppContext>,
    caller: Caller,
    ApiJson(request): ApiJson<RegisterEndpoint>,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    let created = register(&ctx, &caller.owner, request.into()).await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointWithSecret::from(&created)),
    ))
}

/// The caller's endpoints, oldest first (every owner's with the admin key).
#[utoipa::path(
    get, path = "/api/v1/webhooks/endpoints", tag = "webhook-endpoints", operation_id = "list_webhook_endpoints",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = EndpointList, description = "The endpoints"), ApiErrors),
)]
async fn list(
    State(ctx): State<AppContext>,
    caller: Caller,
) -> Result<Json<EndpointList>, ApiError> {
    let endpoints = list_endpoints(&ctx, &caller).await?;
    Ok(Json(EndpointList {
        endpoints: endpoints.iter().map(EndpointView::from).collect(),
    }))
}

/// One of the caller's endpoints.
#[utoipa::path(
    get, path = "/api/v1/webhooks/endpoints/{endpoint_id}", tag = "webhook-endpoints", operation_id = "get_webhook_endpoint",
    params(("endpoint_id" = uuid::Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = EndpointView, description = "The endpoint"), ApiErrors),
)]
async fn show(
    State(ctx): State<AppContext>,
    caller: Caller,
    IdParam(id): IdParam<EndpointId>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(EndpointView::from(
        &owned_endpoint(&ctx, &caller, id).await?,
    )))
}

/// Deletes one of the caller's endpoints, with its deliveries; none is made to it after.
#[utoipa::path(
    delete, path = "/api/v1/webhooks/endpoints/{endpoint_id}", tag = "webhook-endpoints", operation_id = "delete_webhook_endpoint",
    params(("endpoint_id" = uuid::Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204, description = "Deleted"), ApiErrors),
)]
async fn remove(
    State(ctx): State<AppContext>,
    caller: Caller,
    IdParam(id): IdParam<EndpointId>,
) -> Result<StatusCode, ApiError> {
    delete_endpoint(&ctx, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret for one of the caller's endpoints, shown this once; the old one keeps
/// signing beside it for 24 hours, so the receiver can switch without losing a delivery.
#[utoipa::path(
    post, path = "/api/v1/webhooks/endpoints/{endpoint_id}/rotate-secret", tag = "webhook-endpoints", operation_id = "rotate_webhook_secret",
    params(("endpoint_id" = uuid::Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = EndpointWithSecret, description = "The endpoint and its new secret"), ApiErrors),
)]
async fn rotate(
    State(ctx): State<AppContext>,
    caller: Caller,
    IdParam(id): IdParam<EndpointId>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    let rotated = rotate_secret(&ctx, &caller, id).await?;
    Ok(Json(EndpointWithSecret::from(&rotated)))
}

/// Sends a `ping` event to one of the caller's endpoints, signed and retried like any other.
#[utoipa::path(
    post, path = "/api/v1/webhooks/endpoints/{endpoint_id}/test", tag = "webhook-endpoints", operation_id = "test_webhook_endpoint",
    params(("endpoint_id" = uuid::Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 202, body = DeliveryView, description = "The ping's delivery, queued", links(
        ("RetryDelivery" = (operation_id = "retry_webhook_delivery", parameters(("delivery_id" = "$response.body#/delivery_id")))),
    )), ApiErrors),
)]
async fn test(
    State(ctx): State<AppContext>,
    caller: Caller,
    IdParam(id): IdParam<EndpointId>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let delivery = ping(&ctx, &caller, id).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&delivery))))
}

/// The newest deliveries to one of the caller's endpoints, newest first: each event, where it
/// stands, its attempts, the last answer and the next try.
#[utoipa::path(
    get, path = "/api/v1/webhooks/endpoints/{endpoint_id}/deliveries", tag = "webhook-endpoints", operation_id = "list_webhook_deliveries",
    params(("endpoint_id" = uuid::Uuid, Path, description = "The endpoint's id"), DeliveryQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DeliveryList, description = "The deliveries"), ApiErrors),
)]
async fn deliveries(
    State(ctx): State<AppContext>,
    caller: Caller,
    IdParam(id): IdParam<EndpointId>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let list = list_deliveries(&ctx, &caller, id, query.limit).await?;
    Ok(Json(DeliveryList {
        deliveries: list.iter().map(DeliveryView::from).collect(),
    }))
}

/// Sends one of the caller's deliveries again now (same `webhook-id` and body); its attempts
/// count from zero.
#[utoipa::path(
    post, path = "/api/v1/webhooks/deliveries/{delivery_id}/retry", tag = "webhook-endpoints", operation_id = "retry_webhook_delivery",
    params(("delivery_id" = uuid::Uuid, Path, description = "The delivery's id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 202, body = DeliveryView, description = "The delivery, queued again"), ApiErrors),
)]
async fn retry(
    State(ctx): State<AppContext>,
    caller: Caller,
    IdParam(id): IdParam<DeliveryId>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let delivery = resend(&ctx, &caller, id).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&delivery))))
}
