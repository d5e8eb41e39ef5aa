//! JSON bodies read as the document declares them. A key given twice is refused (serde_json
//! keeps the last, while a proxy or a reviewer may read the first: `{"dry_run": true, "dry_run":
//! false}` must not mean two things). serde's derived structs also take a JSON array of their
//! fields in order (`{"options": [null, null]}`, or `["<file id>"]` for a whole body) and an
//! enum as a one-key object (`{"POST": null}` for `"POST"`); here a struct is read from an
//! object only and an enum from a string only, at any depth. Errors name the path of the value
//! (`files[1].size: ...`).

use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, Error as _, IntoDeserializer, MapAccess,
    SeqAccess, Visitor,
};
use serde_json::{Error, Map, Value};
use std::fmt;

/// Parses a body into a value, refusing a key given twice in one object (and trailing data).
pub fn parse(body: &[u8]) -> Result<Value, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = deserializer.deserialize_any(UniqueKeys)?;
    deserializer.end()?;
    Ok(value)
}

/// Builds a [`Value`] as serde_json does, but an object's keys must be distinct.
struct UniqueKeys;

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(UniqueKeysSeed)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
            }
            let value = map.next_value_seed(UniqueKeysSeed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

struct UniqueKeysSeed;

impl<'de> DeserializeSeed<'de> for UniqueKeysSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(UniqueKeys)
    }
}

/// Reads `T` from a parsed body; an error carries the path of the value it is about.
pub fn from_value<T: DeserializeOwned>(
    value: Value,
) -> Result<T, serde_path_to_error::Error<Error>> {
    serde_path_to_error::deserialize(Strict(value))
}

/// A value whose structs must be objects.
struct Strict(Value);

impl<'de> Deserializer<'de> for Strict {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(StrictSeq(items.into_iter())),
            Value::Object(map) => visitor.visit_map(StrictMap {
                entries: map.into_iter(),
                value: None,
            }),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(Error::invalid_type(unexpected(&other), &"an object")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(_) => self.0.deserialize_enum(name, variants, visitor),
            other => Err(Error::invalid_type(unexpected(&other), &"a string")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

fn unexpected(value: &Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("a number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

struct StrictSeq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for StrictSeq {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Strict(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct StrictMap {
    entries: <Map<String, Value> as IntoIterator>::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for StrictMap {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(key.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| Error::custom("a map value was asked for before its key"))?;
        seed.deserialize(Strict(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::from_value;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: Option<u32>,
        #[serde(default)]
        b: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        id: String,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Plain,
    }

    #[test]
    fn objects_read_as_serde_json_reads_them() {
        let body =
            json!({"id": "x", "inner": {"a": 1}, "list": [{"a": null, "b": "y"}], "kind": "plain"});
        let strict: Outer = from_value(body.clone()).unwrap();
        let lax: Outer = serde_json::from_value(body).unwrap();
        assert_eq!(strict, lax);
        assert_eq!(strict.list[0].b.as_deref(), Some("y"));
        let none: Outer = from_value(json!({"id": "x", "inner": null})).unwrap();
        assert_eq!(none.inner, None);
    }

    #[test]
    fn a_struct_written_as_an_array_is_refused_at_any_depth() {
        for (body, path) in [
            (json!(["x"]), "."),
            (json!({"id": "x", "inner": [1, "y"]}), "inner"),
            (json!({"id": "x", "inner": [null, null]}), "inner"),
            (json!({"id": "x", "list": [{"a": 1}, [2]]}), "list[1]"),
        ] {
            assert!(
                serde_json::from_value::<Outer>(body.clone()).is_ok(),
                "serde alone takes {body}"
            );
            let err = from_value::<Outer>(body.clone()).unwrap_err();
            assert_eq!(err.path().to_string(), path, "{body}");
            assert!(
                err.inner().to_string().contains("expected an object"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        for body in [
            r#"{"id": "x", "id": "y"}"#,
            r#"{"id": "x", "inner": {"a": 1, "a": 2}}"#,
            r#"{"id": "x", "list": [{"b": "p", "\u0062": "q"}]}"#,
            r#"{"id": "x", "inner": [], "inner": {}}"#,
        ] {
            let err = super::parse(body.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("duplicate field"), "{body}: {err}");
        }
        let value = super::parse(
            br#"{"id": "x", "inner": {"a": 1, "b": "a"}, "list": [{"a": 2}, {"a": 3}]}"#,
        )
        .unwrap();
        assert_eq!(from_value::<Outer>(value).unwrap().list.len(), 2);
        assert!(super::parse(br#"{"id": "x"} {}"#).is_err(), "trailing data");
    }

    #[test]
    fn an_enum_is_a_string_only() {
        assert!(
            serde_json::from_value::<Outer>(json!({"id": "x", "kind": {"plain": null}})).is_ok()
        );
        let err = from_value::<Outer>(json!({"id": "x", "kind": {"plain": null}})).unwrap_err();
        assert_eq!(err.path().to_string(), "kind");
        let err = from_value::<Outer>(json!({"id": "x", "kind": ["plain"]})).unwrap_err();
        assert_eq!(err.path().to_string(), "kind");
    }

    #[test]
    fn errors_name_the_path_of_the_value() {
        let err = from_value::<Outer>(json!({"id": "x", "list": [{"a": "seven"}]})).unwrap_err();
        assert_eq!(err.path().to_string(), "list[0].a");
        let err = from_value::<Outer>(json!({"id": "x", "extra": 1})).unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
        let err = from_value::<Outer>(json!({"id": "x", "kind": "other"})).unwrap_err();
        assert_eq!(err.path().to_string(), "kind");
    }
}
