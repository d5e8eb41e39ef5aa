//! Webhooks to the owners' servers (not FAL's to us, which `functions/webhook` verifies): how a
//! delivery is signed (`signature.rs`, by the Standard Webhooks specification), which URLs may
//! receive one (`target.rs`), which addresses a delivery may reach (`address.rs`), and one
//! attempt's request (`send.rs`).

pub mod address;
pub mod send;
pub mod signature;
pub mod target;
