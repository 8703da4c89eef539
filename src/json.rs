//! File names in JSON output, losslessly. A name (or path, or symlink target) that is valid
//! UTF-8 is a plain JSON string under its key (`name`, `path`, `link`…); one that is not
//! has no such key and `KEY_bytes` instead, its bytes in standard base64. So a name with a
//! backslash and one with a byte that is not UTF-8 can never look alike, and a consumer
//! that only knows `name` sees no wrong name, just none.

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};
use subroot_formats::base64;

/// Add `bytes` to `obj` as `key` (valid UTF-8) or as `KEY_bytes` (base64, otherwise).
pub fn put_bytes(obj: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => obj.insert(key.to_string(), Value::String(s.to_string())),
        Err(_) => obj.insert(format!("{key}_bytes"), Value::String(base64::encode(bytes))),
    };
}

/// A name in a serde-derived document: its bytes, written under `key` by the rule of
/// [`put_bytes`]. Hold it in a `#[serde(flatten)]` field; `Display` is the escaped text
/// (`\xNN` for a byte that is not UTF-8) for messages and plans meant for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    key: &'static str,
    pub bytes: Vec<u8>,
}

impl Named {
    /// `bytes` under `key`.
    pub fn new(key: &'static str, bytes: impl Into<Vec<u8>>) -> Self {
        Named {
            key,
            bytes: bytes.into(),
        }
    }
}

impl Serialize for Named {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match std::str::from_utf8(&self.bytes) {
            Ok(t) => m.serialize_entry(self.key, t)?,
            Err(_) => {
                m.serialize_entry(&format!("{}_bytes", self.key), &base64::encode(&self.bytes))?
            }
        }
        m.end()
    }
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&subroot_formats::manifest::escape(&self.bytes))
    }
}

/// A [`Named`] that may be missing: `KEY: null` when it is (a symlink target of an entry
/// that is no symlink), as a field that is always present.
#[derive(Debug, Clone)]
pub struct MaybeNamed {
    key: &'static str,
    name: Option<Named>,
}

impl MaybeNamed {
    /// `bytes` (or null) under `key`.
    pub fn new(key: &'static str, bytes: Option<Vec<u8>>) -> Self {
        MaybeNamed {
            key,
            name: bytes.map(|b| Named::new(key, b)),
        }
    }
}

impl Serialize for MaybeNamed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.name {
            Some(n) => n.serialize(s),
            None => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(self.key, &())?;
                m.end()
            }
        }
    }
}

/// `serialize_with` for a list of names: each a JSON string when valid UTF-8, otherwise
/// an object `{"KEY_bytes": BASE64}` (KEY is the name's key, `path` in plans).
pub fn name_list<S: Serializer>(list: &[Named], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(list.len()))?;
    for n in list {
        match std::str::from_utf8(&n.bytes) {
            Ok(t) => seq.serialize_element(t)?,
            Err(_) => seq.serialize_element(n)?,
        }
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lossless() {
        let mut o = Map::new();
        put_bytes(&mut o, "name", b"a\\xfe");
        put_bytes(&mut o, "path", b"/a\xfe");
        assert_eq!(
            Value::Object(o).to_string(),
            r#"{"name":"a\\xfe","path_bytes":"L2H+"}"#
        );
    }

    #[test]
    fn named_fields_and_lists_follow_the_same_rule() {
        #[derive(Serialize)]
        struct Doc {
            #[serde(flatten)]
            from: Named,
            #[serde(flatten)]
            to: Named,
            #[serde(serialize_with = "name_list")]
            kept: Vec<Named>,
        }
        let d = Doc {
            from: Named::new("from", &b"/a\\xfe"[..]),
            to: Named::new("to", &b"/a\xfe"[..]),
            kept: vec![
                Named::new("path", &b"/ok"[..]),
                Named::new("path", &b"/a\xfe"[..]),
            ],
        };
        assert_eq!(
            serde_json::to_string(&d).expect("json"),
            r#"{"from":"/a\\xfe","to_bytes":"L2H+","kept":["/ok",{"path_bytes":"L2H+"}]}"#
        );
        assert_eq!(d.to.to_string(), "/a\\xfe");
        #[derive(Serialize)]
        struct Link {
            #[serde(flatten)]
            a: MaybeNamed,
            #[serde(flatten)]
            b: MaybeNamed,
        }
        let l = Link {
            a: MaybeNamed::new("a", None),
            b: MaybeNamed::new("b", Some(b"\xff".to_vec())),
        };
        assert_eq!(
            serde_json::to_string(&l).expect("json"),
            r#"{"a":null,"b_bytes":"/w=="}"#
        );
    }
}
