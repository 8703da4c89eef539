//! LVM2's text metadata: sections (`name { ... }`) holding assignments (`key = value`)
//! whose values are numbers, strings, or lists of them; `#` starts a comment. Parsed into
//! a small tree the volume code reads. Bounded: nesting depth and sizes are checked.

use crate::{Error, Result};
use std::collections::BTreeMap;

/// A value of the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Number(i64),
    String(String),
    List(Vec<Value>),
    Section(Section),
}

/// A section's assignments and subsections, by name (a name seen twice: the last wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub items: BTreeMap<String, Value>,
    /// Subsection names in the order written (segments are named `segment1`, ...).
    pub order: Vec<String>,
}

const MAX_DEPTH: usize = 16;

impl Section {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.items.get(key)
    }

    pub fn section(&self, key: &str) -> Option<&Section> {
        match self.items.get(key) {
            Some(Value::Section(s)) => Some(s),
            _ => None,
        }
    }

    pub fn number(&self, key: &str) -> Option<i64> {
        match self.items.get(key) {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        match self.items.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The strings of a list (`status = ["READ", "WRITE"]`).
    pub fn strings(&self, key: &str) -> Vec<&str> {
        match self.items.get(key) {
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The subsections in the order written.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.order.iter().filter_map(|n| match self.items.get(n) {
            Some(Value::Section(s)) => Some((n.as_str(), s)),
            _ => None,
        })
    }
}

/// Parse metadata text into its top-level section.
pub fn parse(text: &str) -> Result<Section> {
    let mut p = Parser {
        b: text.as_bytes(),
        at: 0,
    };
    let top = p.section_body(0)?;
    p.skip_space();
    if p.at < p.b.len() {
        return Err(p.error("an unmatched '}'"));
    }
    Ok(top)
}

struct Parser<'a> {
    b: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> Error {
        let line = 1 + self.b[..self.at.min(self.b.len())]
            .iter()
            .filter(|&&c| c == b'\n')
            .count();
        Error::corrupt(format!("LVM2 metadata text, line {line}: expected {what}"))
    }

    fn skip_space(&mut self) {
        while let Some(&c) = self.b.get(self.at) {
            if c == b'#' {
                while self.b.get(self.at).is_some_and(|&c| c != b'\n') {
                    self.at += 1;
                }
            } else if c.is_ascii_whitespace() {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.b.get(self.at).copied()
    }

    fn name(&mut self) -> Result<String> {
        self.skip_space();
        let start = self.at;
        while self
            .b
            .get(self.at)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || b"_.+-".contains(&c))
        {
            self.at += 1;
        }
        if start == self.at {
            return Err(self.error("a name"));
        }
        Ok(String::from_utf8_lossy(&self.b[start..self.at]).into_owned())
    }

    /// Assignments and sections up to a '}' (not consumed) or the end.
    fn section_body(&mut self, depth: usize) -> Result<Section> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("at most {MAX_DEPTH} nested sections")));
        }
        let mut s = Section::default();
        loop {
            match self.peek() {
                None | Some(b'}') => return Ok(s),
                _ => {}
            }
            let name = self.name()?;
            let value = match self.peek() {
                Some(b'{') => {
                    self.at += 1;
                    let inner = self.section_body(depth + 1)?;
                    if self.peek() != Some(b'}') {
                        return Err(self.error("'}'"));
                    }
                    self.at += 1;
                    s.order.push(name.clone());
                    Value::Section(inner)
                }
                Some(b'=') => {
                    self.at += 1;
                    self.value()?
                }
                _ => return Err(self.error(&format!("'=' or '{{' after {name:?}"))),
            };
            s.items.insert(name, value);
        }
    }

    fn value(&mut self) -> Result<Value> {
        match self.peek() {
            Some(b'[') => {
                self.at += 1;
                let mut list = Vec::new();
                loop {
                    match self.peek() {
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Value::List(list));
                        }
                        Some(b',') if !list.is_empty() => self.at += 1,
                        _ => {}
                    }
                    if self.peek() == Some(b']') {
                        continue;
                    }
                    list.push(self.scalar()?);
                }
            }
            _ => self.scalar(),
        }
    }

    fn scalar(&mut self) -> Result<Value> {
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                let mut out = Vec::new();
                loop {
                    match self.b.get(self.at) {
                        None => return Err(self.error("a closing '\"'")),
                        Some(b'"') => {
                            self.at += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let c = *self
                                .b
                                .get(self.at + 1)
                                .ok_or_else(|| self.error("a character after '\\'"))?;
                            out.push(c);
                            self.at += 2;
                        }
                        Some(&c) => {
                            out.push(c);
                            self.at += 1;
                        }
                    }
                }
                Ok(Value::String(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.at;
                self.at += 1;
                while self.b.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
                // Floats appear only in fields subroot does not read: keep the integer part.
                if self.b.get(self.at) == Some(&b'.') {
                    self.at += 1;
                    while self.b.get(self.at).is_some_and(u8::is_ascii_digit) {
                        self.at += 1;
                    }
                }
                let digits = std::str::from_utf8(&self.b[start..self.at]).unwrap_or("");
                let int = digits.split('.').next().unwrap_or("");
                int.parse::<i64>()
                    .map(Value::Number)
                    .map_err(|_| self.error("a number that fits 64 bits"))
            }
            _ => Err(self.error("a value (number, string or list)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_volume_group() {
        let t = r#"vg0 {
id = "abc"
seqno = 3   # comment
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8192
physical_volumes {
pv0 {
id = "x-y"
pe_start = 2048
}
}
logical_volumes {
root {
segment1 {
stripes = [
"pv0", 0,
"pv1", 10
]
}
}
}
}
contents = "Text Format Volume Group"
version = 1
creation_time = 1700000000.5
"#;
        let top = parse(t).unwrap();
        let vg = top.section("vg0").unwrap();
        assert_eq!(vg.number("seqno"), Some(3));
        assert_eq!(vg.strings("status"), ["RESIZEABLE", "READ", "WRITE"]);
        let seg = vg
            .section("logical_volumes")
            .and_then(|l| l.section("root"))
            .and_then(|r| r.section("segment1"))
            .unwrap();
        assert_eq!(
            seg.get("stripes"),
            Some(&Value::List(vec![
                Value::String("pv0".into()),
                Value::Number(0),
                Value::String("pv1".into()),
                Value::Number(10)
            ]))
        );
        assert_eq!(top.number("creation_time"), Some(1700000000));
        for bad in ["vg {", "vg { a = }", "a = \"x", "}", "a b"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
