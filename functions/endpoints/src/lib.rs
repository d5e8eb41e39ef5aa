//! The webhook endpoints function: owners register the URLs their servers are told of their jobs
//! at, list, rotate, delete and test them, and see and resend the deliveries made to them. Its
//! routes call `image2model_shared::app::webhook_endpoints` and `webhook_events`; the
//! deliveries themselves go out from the delivery function.

mod routes;
mod views;

pub use routes::router;

#[cfg(test)]
mod route_tests;
