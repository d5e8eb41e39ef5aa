//! Adapters: the ports implemented on this machine alone (`embedded/`, feature `embedded`), on
//! AWS (`aws/`, feature `aws`), and FAL.AI's queue over HTTPS (`fal.rs`, everywhere).

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod fal;
