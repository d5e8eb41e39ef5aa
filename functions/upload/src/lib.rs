//! The upload function: presigned uploads straight to object storage, the synchronous
//! single-image upload, the compatibility batch upload, and file records.

mod multipart;
mod routes;
mod views;

pub use routes::router;

#[cfg(test)]
mod route_tests;
