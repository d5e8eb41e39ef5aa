//! Adapters: the ports implemented on this machine alone (`embedded/`, feature `embedded`) and
//! on AWS (`aws/`, feature `aws`).

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "embedded")]
pub mod embedded;
