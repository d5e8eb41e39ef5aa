//! Whole numbers in JSON bodies as JSON Schema counts them: `7` and `7.0` are the same integer
//! (clients whose numbers are floats write the latter), while `7.5`, `-1` and out-of-range
//! values are refused. For request fields declared `type: integer`, through
//! `#[serde(deserialize_with = ...)]`.

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A non-negative integer that fits `T`, written as a JSON integer or an integral float.
pub fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    deserializer.deserialize_any(WholeVisitor(PhantomData))
}

/// [`whole`] for an optional field (`null` or absent is `None`; pair with `#[serde(default)]`).
pub fn optional_whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    deserializer.deserialize_option(OptionalVisitor(PhantomData))
}

struct WholeVisitor<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Visitor<'_> for WholeVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a non-negative integer of at most {} bits",
            8 * size_of::<T>()
        )
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
        let unsigned =
            u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))?;
        self.visit_u64(unsigned)
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
        // 2^64 is the first float past u64::MAX; every integral float below it converts exactly.
        if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
            self.visit_u64(v as u64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

struct OptionalVisitor<T>(PhantomData<T>);

impl<'de, T: TryFrom<u64>> Visitor<'de> for OptionalVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("null or a non-negative integer")
    }

    fn visit_none<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        whole(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Counts {
        #[serde(deserialize_with = "super::whole")]
        size: u64,
        #[serde(default, deserialize_with = "super::optional_whole")]
        limit: Option<u32>,
    }

    fn parse(json: &str) -> Result<Counts, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_are_integers() {
        assert_eq!(
            parse(r#"{"size": 7229084.0, "limit": 500.0}"#),
            Ok(Counts {
                size: 7_229_084,
                limit: Some(500)
            })
        );
        assert_eq!(
            parse(r#"{"size": 1e3}"#),
            Ok(Counts {
                size: 1000,
                limit: None
            })
        );
        assert_eq!(
            parse(r#"{"size": 1, "limit": null}"#),
            Ok(Counts {
                size: 1,
                limit: None
            })
        );
        assert_eq!(
            parse(r#"{"size": 18446744073709551615}"#),
            Ok(Counts {
                size: u64::MAX,
                limit: None
            })
        );
    }

    #[test]
    fn fractions_negatives_and_overflow_are_refused() {
        for bad in [
            r#"{"size": 1.5}"#,
            r#"{"size": -1}"#,
            r#"{"size": -0.5}"#,
            r#"{"size": 1e30}"#,
            r#"{"size": "7"}"#,
            r#"{"size": null}"#,
            r#"{"size": 1, "limit": 4294967296}"#,
            r#"{"size": 1, "limit": 4294967296.0}"#,
            r#"{"size": 1, "limit": -3}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    /// The refusal says what was expected: clients see it in the 422's message.
    #[test]
    fn refusals_say_what_was_expected() {
        let err = parse(r#"{"size": "7"}"#).unwrap_err();
        assert!(
            err.contains("a non-negative integer of at most 64 bits"),
            "{err}"
        );
        let err = parse(r#"{"size": 1, "limit": 4294967296}"#).unwrap_err();
        assert!(
            err.contains("a non-negative integer of at most 32 bits"),
            "{err}"
        );
    }
}
