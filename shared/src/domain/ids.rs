//! Strongly typed UUID v4 identifiers. Parsing accepts only the canonical hyphenated form, so a
//! path segment like `..`, `%2F`, a NUL byte or an injection string never reaches a store.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A string that is not a canonical hyphenated UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id")]
pub struct InvalidId;

/// Parses the 36-character hyphenated UUID form and nothing else.
fn parse_canonical(raw: &str) -> Result<Uuid, InvalidId> {
    if raw.len() != 36 || !raw.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(InvalidId);
    }
    Uuid::try_parse(raw).map_err(|_| InvalidId)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        /// Only the canonical form, as in a path: a JSON body names ids the same way.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = std::borrow::Cow::<str>::deserialize(deserializer)?;
                raw.parse().map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{raw:?} is not an id (ids are UUIDs such as 123e4567-e89b-42d3-a456-426614174000)"
                    ))
                })
            }
        }

        impl $name {
            /// A fresh random (v4) id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                parse_canonical(raw).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies an uploaded file.
    FileId
);
id_type!(
    /// Identifies a generation job.
    JobId
);
id_type!(
    /// Identifies a batch of jobs created together.
    BatchId
);
id_type!(
    /// Identifies a webhook endpoint an owner registered.
    EndpointId
);
id_type!(
    /// Identifies one delivery: an event to one endpoint, with all its attempts.
    DeliveryId
);

impl DeliveryId {
    /// The id of event `event_id`'s delivery to `endpoint`: the same for the same pair, so an
    /// event announced twice (a retried announcement) makes one delivery.
    pub fn for_event(endpoint: EndpointId, event_id: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(endpoint.0.as_bytes())
            .chain_update(event_id.as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_canonical_uuid_and_round_trips() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        let upper = id.to_string().to_uppercase();
        assert_eq!(upper.parse::<JobId>(), Ok(id));
    }

    #[test]
    fn rejects_hostile_segments() {
        for raw in [
            "",
            "..",
            "../../etc/passwd",
            "a/b",
            "%2e%2e",
            "12345678-1234-1234-1234-1234567890ab\0",
            "\0",
            "' OR 1=1 --",
            "{12345678-1234-1234-1234-1234567890ab}",
            "urn:uuid:12345678-1234-1234-1234-1234567890ab",
            "12345678123412341234123456789abc",
            &"a".repeat(5000),
        ] {
            assert_eq!(raw.parse::<FileId>(), Err(InvalidId), "{raw:?}");
        }
    }

    #[test]
    fn json_bodies_take_the_canonical_form_only() {
        let id = FileId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<FileId>(&json).unwrap(), id);
        for loose in [
            format!("\"{}\"", id.as_uuid().simple()),
            format!("\"{{{id}}}\""),
            format!("\"urn:uuid:{id}\""),
            "12".to_owned(),
            "null".to_owned(),
        ] {
            assert!(serde_json::from_str::<FileId>(&loose).is_err(), "{loose}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic_and_only_canonical_parse(raw in ".{0,80}") {
            if let Ok(id) = raw.parse::<BatchId>() {
                prop_assert_eq!(id.to_string(), raw.to_lowercase());
            }
        }
    }
}
