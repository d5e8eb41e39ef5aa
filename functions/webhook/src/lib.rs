//! The webhook function: `POST /api/v1/webhooks/fal`. FAL.AI calls it when a request finishes.
//! A delivery whose signature or timestamp does not verify is refused with 401 and changes
//! nothing; a verified one sends the job's worker a message to look at its request now. The
//! worker fetches the result through the URLs recorded at submission, so duplicate, late and
//! out-of-order deliveries finish a job at most once.

mod route;
mod signature;

pub use route::router;
pub use signature::{SignatureVerifier, VerifyError};

#[cfg(test)]
mod route_tests;
