//! Short-lived tokens that let a browser follow one task without a key (`EventSource` cannot
//! send headers): an HMAC-SHA256, under the deployment's status-token key, over the task id,
//! its owner and an expiry. A token opens that task's status and stream and nothing else.

use crate::domain::JobId;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// A token and when it stops opening anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the status token is not valid for this task")]
    Invalid,
    #[error("the status token has expired")]
    Expired,
}

fn mac(secret: &[u8], task_id: JobId, owner: &str, expires: i64) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(format!("image2model-status-token-v1\n{task_id}\n{owner}\n{expires}").as_bytes());
    mac
}

/// The longest a token lives, whatever `STATUS_TOKEN_TTL_SECONDS` says (ten years: its expiry
/// stays within the digits [`verify`] reads).
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A token for `task_id` of `owner`, valid for `ttl` (at most [`MAX_TTL`]) from `now`.
pub fn issue(
    secret: &[u8],
    task_id: JobId,
    owner: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> StatusToken {
    let expires = now.timestamp() + ttl.min(MAX_TTL).as_secs() as i64;
    let signature = hex::encode(mac(secret, task_id, owner, expires).finalize().into_bytes());
    StatusToken {
        token: format!("{expires}.{signature}"),
        expires_at: DateTime::from_timestamp(expires, 0).unwrap_or(now),
    }
}

/// Whether `token` opens `task_id` of `owner` at `now`. A token that was altered (or made for
/// another task or owner) is `Invalid` even when its expiry has also passed.
pub fn verify(
    secret: &[u8],
    task_id: JobId,
    owner: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(), TokenError> {
    let (expires, signature) = token.split_once('.').ok_or(TokenError::Invalid)?;
    // The expiry as `issue` writes it: 1 to 12 decimal digits, no sign, no leading zero.
    if expires.is_empty()
        || !expires.bytes().all(|b| b.is_ascii_digit())
        || expires.len() > 12
        || expires.starts_with('0')
    {
        return Err(TokenError::Invalid);
    }
    let expires: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
    let signature = hex::decode(signature).map_err(|_| TokenError::Invalid)?;
    mac(secret, task_id, owner, expires)
        .verify_slice(&signature)
        .map_err(|_| TokenError::Invalid)?;
    if now.timestamp() >= expires {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_opens_its_task_of_its_owner_until_it_expires() {
        let now = Utc::now();
        let task = JobId::new();
        let t = issue(SECRET, task, "alice", Duration::from_secs(60), now);
        assert_eq!(verify(SECRET, task, "alice", &t.token, now), Ok(()));
        assert_eq!(t.expires_at.timestamp(), now.timestamp() + 60);
        let later = now + chrono::Duration::seconds(60);
        assert_eq!(
            verify(SECRET, task, "alice", &t.token, later),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(SECRET, JobId::new(), "alice", &t.token, now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(SECRET, task, "bob", &t.token, now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(b"another key", task, "alice", &t.token, now),
            Err(TokenError::Invalid)
        );
        // A later expiry written over the signed one does not verify.
        let (_, signature) = t.token.split_once('.').unwrap();
        let stretched = format!("{}.{signature}", now.timestamp() + 999_999);
        assert_eq!(
            verify(SECRET, task, "alice", &stretched, now),
            Err(TokenError::Invalid)
        );
        for junk in [
            "",
            ".",
            "1.",
            ".ab",
            "x.ab",
            "-1.ab",
            "1.zz",
            "99999999999999999999.00",
        ] {
            assert_eq!(
                verify(SECRET, task, "alice", junk, now),
                Err(TokenError::Invalid),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn a_ttl_beyond_ten_years_makes_a_ten_year_token() {
        let now = Utc::now();
        let task = JobId::new();
        let t = issue(SECRET, task, "alice", Duration::MAX, now);
        assert_eq!(
            t.expires_at.timestamp(),
            now.timestamp() + MAX_TTL.as_secs() as i64
        );
        let nine_years = now + chrono::Duration::days(9 * 365);
        assert_eq!(verify(SECRET, task, "alice", &t.token, nine_years), Ok(()));
    }

    /// Only the decimal digits `issue` writes: a signed expiry written another way (a sign, or
    /// more than 12 digits) is refused even though the signature matches.
    #[test]
    fn only_the_expiry_as_issued_verifies() {
        let now = Utc::now();
        let task = JobId::new();
        let signed =
            |expires: i64| hex::encode(mac(SECRET, task, "alice", expires).finalize().into_bytes());
        let far = 999_999_999_999; // 12 digits
        assert_eq!(
            verify(
                SECRET,
                task,
                "alice",
                &format!("{far}.{}", signed(far)),
                now
            ),
            Ok(())
        );
        let farther = 1_000_000_000_000; // 13 digits
        let in_a_year = now.timestamp() + 365 * 24 * 3600;
        for token in [
            format!("{farther}.{}", signed(farther)),
            format!("+{in_a_year}.{}", signed(in_a_year)),
            format!("0{in_a_year}.{}", signed(in_a_year)),
        ] {
            assert_eq!(
                verify(SECRET, task, "alice", &token, now),
                Err(TokenError::Invalid),
                "{token}"
            );
        }
    }

    proptest! {
        #[test]
        fn no_altered_token_verifies(at in 0usize..80, byte in any::<u8>()) {
            let now = Utc::now();
            let task = JobId::new();
            let token = issue(SECRET, task, "alice", Duration::from_secs(600), now).token;
            let mut bytes = token.clone().into_bytes();
            let at = at % bytes.len();
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            let altered = String::from_utf8_lossy(&bytes).into_owned();
            prop_assume!(altered != token);
            // Hex is case-insensitive: an upper-cased digit is the same signature.
            prop_assume!(altered.to_ascii_lowercase() != token);
            prop_assert!(verify(SECRET, task, "alice", &altered, now).is_err());
        }
    }
}
