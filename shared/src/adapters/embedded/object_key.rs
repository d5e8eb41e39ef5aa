//! The object keys the directory storage accepts, checked before a path is built from one and
//! before a signed URL is honoured.

use crate::ports::StorageError;

/// Keys are `/`-separated segments of `[A-Za-z0-9._-]`, never `.` or `..`, at most 512 bytes:
/// what every key this system makes looks like, and what a directory can hold without a key
/// escaping it.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let valid = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        });
    if valid {
        Ok(())
    } else {
        Err(StorageError::InvalidKey(key.to_owned()))
    }
}
