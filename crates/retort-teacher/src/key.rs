//! The response cache's keys: SHA-256 of a request's canonical JSON, and of a text for
//! its embedding.
//!
//! A key is computed for every call, on the async worker that also drives the HTTP
//! client, so it is written straight from the request's `Serialize` impl into one
//! buffer. The bytes are exactly what every earlier version hashed —
//! `serde_json::to_value` of the request, written with object keys sorted — because
//! a changed key would orphan every answer a user has paid for; building that `Value`
//! tree cost an allocation per key and per scalar (5% of the async worker's profile in
//! a 20,000-call run).

use std::borrow::Cow;
use std::ops::Range;

use serde::ser::{self, Serialize, Serializer as _};
use serde::Serialize as DeriveSerialize;
use sha2::{Digest, Sha256};

use crate::api::ChatRequest;

/// SHA-256 of the canonical request; the cache's primary key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[derive(DeriveSerialize)]
struct KeyParts<'a> {
    v: u32,
    provider: &'a str,
    model: &'a str,
    request: &'a ChatRequest,
    extra_body: &'a serde_json::Map<String, serde_json::Value>,
}

/// The cache key of a request: SHA-256 of canonical JSON of the provider, the model,
/// the request (messages, sampling parameters, sample index) and the teacher's
/// `extra_body` (which also changes answers). Pass the request with the teacher's
/// defaults already applied, so changing a default changes the key.
pub fn request_key(
    provider: &str,
    model: &str,
    req: &ChatRequest,
    extra_body: &serde_json::Map<String, serde_json::Value>,
) -> CacheKey {
    let parts = KeyParts {
        v: 1,
        provider,
        model,
        request: req,
        extra_body,
    };
    let mut out = Vec::with_capacity(512);
    parts
        .serialize(Canonical { out: &mut out })
        .expect("a ChatRequest always encodes as JSON");
    CacheKey(Sha256::digest(&out).into())
}

/// SHA-256 of a text, the key of its embedding.
pub fn text_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

type Error = serde_json::Error;

/// Writes JSON as `serde_json::to_value` would model it, with every object's keys in
/// byte order: structs and maps are objects, `None` and units are `null`, a float is
/// widened to `f64` (non-finite ones are `null`), bytes are an array of numbers, an
/// enum variant with data is a one-key object. Scalars are written by serde_json itself.
struct Canonical<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Canonical<'a> {
    fn json(&mut self) -> serde_json::Serializer<&mut Vec<u8>> {
        serde_json::Serializer::new(&mut *self.out)
    }

    /// `{"variant":` before an enum variant's data.
    fn open_variant(&mut self, variant: &str) -> Result<(), Error> {
        self.out.push(b'{');
        self.json().serialize_str(variant)?;
        self.out.push(b':');
        Ok(())
    }

    fn array(self, close_variant: bool) -> Array<'a> {
        self.out.push(b'[');
        Array {
            out: self.out,
            first: true,
            close_variant,
        }
    }

    fn object(self, close_variant: bool) -> Object<'a> {
        Object {
            out: self.out,
            close_variant,
            values: Vec::new(),
            entries: Vec::new(),
            key: None,
        }
    }
}

impl<'a> ser::Serializer for Canonical<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(mut self, v: bool) -> Result<(), Error> {
        self.json().serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(mut self, v: i64) -> Result<(), Error> {
        self.json().serialize_i64(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        // A `Value` number holds what fits in a u64 or an i64, nothing wider.
        if let Ok(u) = u64::try_from(v) {
            self.serialize_u64(u)
        } else if let Ok(i) = i64::try_from(v) {
            self.serialize_i64(i)
        } else {
            Err(ser::Error::custom("number out of range"))
        }
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(mut self, v: u64) -> Result<(), Error> {
        self.json().serialize_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.serialize_i128(
            i128::try_from(v).map_err(|_| ser::Error::custom("number out of range"))?,
        )
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        // `Value` stores an f32 as the f64 it widens to, and writes that.
        self.serialize_f64(v.into())
    }
    fn serialize_f64(mut self, v: f64) -> Result<(), Error> {
        self.json().serialize_f64(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(mut self, v: &str) -> Result<(), Error> {
        self.json().serialize_str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq;
        let mut a = self.array(false);
        for b in v {
            a.serialize_element(b)?;
        }
        a.end()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Error> {
        self.serialize_str(v)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.open_variant(variant)?;
        v.serialize(Canonical { out: self.out })?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a>, Error> {
        Ok(self.array(false))
    }
    fn serialize_tuple(self, _: usize) -> Result<Array<'a>, Error> {
        Ok(self.array(false))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Array<'a>, Error> {
        Ok(self.array(false))
    }
    fn serialize_tuple_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Array<'a>, Error> {
        self.open_variant(variant)?;
        Ok(self.array(true))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a>, Error> {
        Ok(self.object(false))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Object<'a>, Error> {
        Ok(self.object(false))
    }
    fn serialize_struct_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Object<'a>, Error> {
        self.open_variant(variant)?;
        Ok(self.object(true))
    }
}

/// An array: elements go straight to the output, in order.
struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    close_variant: bool,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        v.serialize(Canonical { out: self.out })
    }

    fn close(self) -> Result<(), Error> {
        self.out.push(b']');
        if self.close_variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// The four array-shaped serde traits, all one [`Array`].
macro_rules! array_parts {
    ($($part:ident :: $add:ident),*) => {$(
        impl ser::$part for Array<'_> {
            type Ok = ();
            type Error = Error;
            fn $add<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
                self.element(v)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

array_parts!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// An object: each value is written to a side buffer under its key, and the entries go
/// out sorted by key when the object ends (the last value of a repeated key wins, as
/// in a `Value` map).
struct Object<'a> {
    out: &'a mut Vec<u8>,
    close_variant: bool,
    values: Vec<u8>,
    entries: Vec<(Cow<'static, str>, Range<usize>)>,
    /// A map key given before its value.
    key: Option<String>,
}

impl Object<'_> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: Cow<'static, str>, v: &T) -> Result<(), Error> {
        let start = self.values.len();
        v.serialize(Canonical {
            out: &mut self.values,
        })?;
        self.entries.push((key, start..self.values.len()));
        Ok(())
    }

    fn close(mut self) -> Result<(), Error> {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        self.out.push(b'{');
        let n = self.entries.len();
        let mut first = true;
        for (i, (key, range)) in self.entries.iter().enumerate() {
            if i + 1 < n && self.entries[i + 1].0 == *key {
                continue;
            }
            if !std::mem::take(&mut first) {
                self.out.push(b',');
            }
            serde_json::Serializer::new(&mut *self.out).serialize_str(key)?;
            self.out.push(b':');
            self.out.extend_from_slice(&self.values[range.clone()]);
        }
        self.out.push(b'}');
        if self.close_variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        // Every map a request holds (`serde_json::Map`, schemas, `extra_body`) is keyed
        // by strings.
        match serde_json::to_value(key)? {
            serde_json::Value::String(s) => {
                self.key = Some(s);
                Ok(())
            }
            other => Err(ser::Error::custom(format!(
                "a map key in a request is not a string: {other}"
            ))),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ser::Error::custom("a map value without its key"))?;
        self.entry(Cow::Owned(key), v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// Structs and struct variants: fields are entries under their static names.
macro_rules! struct_parts {
    ($($part:ident),*) => {$(
        impl ser::$part for Object<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                v: &T,
            ) -> Result<(), Error> {
                self.entry(Cow::Borrowed(key), v)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

struct_parts!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use retort_core::Message;

    /// A one-turn request (the cache's tests use it too).
    pub(crate) fn req(text: &str, sample: u32) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::user(text)],
            temperature: Some(0.7),
            sample_index: sample,
            ..Default::default()
        }
    }

    #[test]
    fn key_depends_on_everything_that_changes_the_answer() {
        let extra = serde_json::Map::new();
        let k = |p: &str, m: &str, r: &ChatRequest| request_key(p, m, r, &extra);
        let base = k("openai", "m", &req("hi", 0));
        assert_eq!(base, k("openai", "m", &req("hi", 0)));
        assert_ne!(base, k("openai", "m", &req("hi", 1)));
        assert_ne!(base, k("openai", "m2", &req("hi", 0)));
        assert_ne!(base, k("anthropic", "m", &req("hi", 0)));
        assert_ne!(base, k("openai", "m", &req("hi!", 0)));
        let mut extra2 = serde_json::Map::new();
        extra2.insert("top_k".into(), 20.into());
        assert_ne!(base, request_key("openai", "m", &req("hi", 0), &extra2));
    }

    /// Requests covering every field kind the key reads: a plain prompt, and one with
    /// a system turn, tool calls and results, escapes, a nested schema, tools, a
    /// reasoning budget and an extra body.
    fn key_samples() -> Vec<(ChatRequest, serde_json::Map<String, serde_json::Value>)> {
        use retort_core::ToolCall;
        let mut tool_turn = Message::assistant("");
        tool_turn.tool_calls = vec![ToolCall {
            id: Some("call_1".into()),
            name: "lookup".into(),
            arguments: "{\"q\": \"caf\u{e9}\"}".into(),
        }];
        tool_turn.reasoning = Some("think\nfirst".into());
        let mut result = Message::new("tool", "{\"temp\": -3.5e-7}");
        result.tool_call_id = Some("call_1".into());
        result.name = Some("lookup".into());
        let rich = ChatRequest {
            messages: vec![
                Message::system("Be \"brief\"\t\u{1}"),
                Message::user("snow \u{2603} & <tags> \\ done"),
                tool_turn,
                result,
            ],
            temperature: Some(0.3),
            top_p: Some(0.95),
            max_tokens: Some(4096),
            stop: vec!["</s>".into(), "\n\n".into()],
            seed: Some(u64::MAX),
            response_format: Some(serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": "s", "strict": true, "schema": {
                    "type": "object", "required": ["z", "a"],
                    "properties": {"z": {"type": "number", "minimum": 1.5}, "a": {"type": ["string", "null"]}}
                }}
            })),
            sample_index: 3,
            reasoning_effort: Some("high".into()),
            max_reasoning_tokens: Some(1024),
            tools: vec![
                serde_json::json!({"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}),
            ],
            tool_choice: Some(serde_json::json!("auto")),
        };
        let mut extra = serde_json::Map::new();
        extra.insert("top_k".into(), 20.into());
        extra.insert(
            "chat_template_kwargs".into(),
            serde_json::json!({"enable_thinking": false}),
        );
        vec![(req("hi", 0), serde_json::Map::new()), (rich, extra)]
    }

    #[test]
    fn keys_stay_what_earlier_versions_stored() {
        // Changing how a key is computed orphans every answer users have paid for:
        // these are the keys retort has always written for these requests.
        let got: Vec<String> = key_samples()
            .iter()
            .map(|(r, extra)| request_key("openai", "m", r, extra).to_string())
            .collect();
        assert_eq!(
            got,
            [
                "bc642d8cfa3ba4f9cafd025fc4fb30ffc10426bf1a1146df59dee065ea88722f",
                "87516999095d1ee644dcf0d040e13dc923ad0459f6aa1adca34b30f2d0049fe3",
            ]
        );
    }

    #[test]
    fn canonical_json_is_the_sorted_value_tree() {
        // Without serde_json's `preserve_order` a `Value` object is a sorted map, so
        // writing `to_value` out is the reference form.
        let cases: Vec<serde_json::Value> = vec![
            serde_json::json!({"b": 1, "a": [true, null, -0.0, 1e300, "x\u{0}\"y"], "\"q": {}, "A": {"z": [], "y": {"x": 1}}}),
            serde_json::json!([
                [],
                {},
                "",
                0,
                -9223372036854775808i64,
                18446744073709551615u64
            ]),
            serde_json::json!("plain"),
        ];
        for v in cases {
            assert_eq!(canonical_string(&v), serde_json::to_string(&v).unwrap());
        }
        #[derive(DeriveSerialize)]
        enum E {
            Unit,
            New(f32),
            Tuple(u8, char),
            Struct { z: Option<u8>, a: Vec<u8> },
        }
        struct Bytes(Vec<u8>);
        impl Serialize for Bytes {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
        #[derive(DeriveSerialize)]
        struct S {
            z: f32,
            m: std::collections::HashMap<String, E>,
            bytes: Bytes,
            nan: f64,
            u: (),
            a: Vec<E>,
        }
        let s = S {
            z: 0.7,
            m: [("k".to_string(), E::Unit), ("j".to_string(), E::New(0.1))].into(),
            bytes: Bytes(vec![1, 2, 255]),
            nan: f64::NAN,
            u: (),
            a: vec![
                E::Tuple(7, '\u{2603}'),
                E::Struct {
                    z: None,
                    a: vec![3],
                },
            ],
        };
        let value = serde_json::to_value(&s).unwrap();
        assert_eq!(canonical_string(&s), serde_json::to_string(&value).unwrap());
        // A map that repeats a key: the last value wins, as in a `Value` map.
        struct Repeats;
        impl Serialize for Repeats {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use ser::SerializeMap;
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("b", &1)?;
                m.serialize_entry("a", &2)?;
                m.serialize_entry("b", &3)?;
                m.end()
            }
        }
        let value = serde_json::to_value(Repeats).unwrap();
        assert_eq!(
            canonical_string(&Repeats),
            serde_json::to_string(&value).unwrap()
        );
        assert_eq!(canonical_string(&Repeats), r#"{"a":2,"b":3}"#);
    }

    fn canonical_string<T: Serialize + ?Sized>(v: &T) -> String {
        let mut out = vec![];
        v.serialize(Canonical { out: &mut out }).unwrap();
        String::from_utf8(out).unwrap()
    }
}
