//! Validation of what clients send: image bytes (sniffed, never trusted by extension), declared
//! content types, and filenames.

pub mod filename;
pub mod image;

pub use self::filename::sanitize_filename;
pub use self::image::{ImageKind, ImageLimits, ImageRejection, inspect_image};
