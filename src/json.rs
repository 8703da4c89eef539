//! File names in JSON output, losslessly. A name (or path, or symlink target) that is valid
//! UTF-8 is a plain JSON string under its key (`name`, `path`, `link`…); one that is not
//! has no such key and `KEY_bytes` instead, its bytes in standard base64. So a name with a
//! backslash and one with a byte that is not UTF-8 can never look alike, and a consumer
//! that only knows `name` sees no wrong name, just none.

use serde_json::{Map, Value};
use subroot_formats::base64;

/// Add `bytes` to `obj` as `key` (valid UTF-8) or as `KEY_bytes` (base64, otherwise).
pub fn put_bytes(obj: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => obj.insert(key.to_string(), Value::String(s.to_string())),
        Err(_) => obj.insert(format!("{key}_bytes"), Value::String(base64::encode(bytes))),
    };
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
}
