//! The sidecar beside each batch output, `<output>.subroot.json`: what was done to which
//! input (identified by path, size, mtime, device and inode of it and of every file of its
//! backing chain), with which options and subroot version, and how it ended. `--resume`
//! skips an image only when its sidecar proves the output is exactly what would be made now.

use crate::json::put_bytes;
use crate::output::AtomicOutput;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The sidecar file name suffix.
pub const SUFFIX: &str = ".subroot.json";

/// The version recorded in sidecars; an output made by another version is redone.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A sidecar's contents (field names are the JSON schema, documented in docs/json.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sidecar {
    pub subroot_version: String,
    pub operation: String,
    pub options: Value,
    pub input: Value,
    pub output: OutputInfo,
    /// `"ok"` or `"failed"`.
    pub result: String,
    pub error: Option<String>,
    pub seconds: f64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// The output file as it was when the sidecar was written (`size` is null after a failure).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputInfo {
    /// `path` (absolute), or `path_bytes` when it is not UTF-8.
    #[serde(flatten)]
    pub path: Map<String, Value>,
    pub size: Option<u64>,
}

impl OutputInfo {
    /// The output at `path` (made absolute), its size not known yet.
    pub fn new(path: &Path) -> Self {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut m = Map::new();
        put_bytes(&mut m, "path", abs.as_os_str().as_bytes());
        OutputInfo {
            path: m,
            size: None,
        }
    }
}

/// The sidecar path of `output`.
pub fn path_of(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(SUFFIX);
    PathBuf::from(s)
}

/// The identity of one file: absolute path, size, mtime in ns, device and inode.
fn file_identity(path: &Path) -> Value {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut v = Map::new();
    put_bytes(&mut v, "path", abs.as_os_str().as_bytes());
    let more = match std::fs::metadata(path) {
        Ok(m) => json!({
            "size": m.size(),
            "mtime_ns": m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()),
            "dev": m.dev(),
            "ino": m.ino(),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    if let Value::Object(more) = more {
        v.extend(more);
    }
    Value::Object(v)
}

/// The fingerprint of an input: its identity plus that of every file of its backing chain
/// (`backing_chain`, nearest first). When the image cannot be opened the chain is unknown
/// and left empty; such an image fails anyway and is never skipped.
pub fn fingerprint(input: &Path) -> Value {
    let mut v = file_identity(input);
    let chain: Vec<Value> = match subroot_formats::image::Image::open(input) {
        Ok(img) => img
            .chain()
            .iter()
            .skip(1)
            .map(|b| file_identity(b.path()))
            .collect(),
        Err(_) => Vec::new(),
    };
    if let Value::Object(m) = &mut v {
        m.insert("backing_chain".into(), Value::Array(chain));
    }
    v
}

/// Read the sidecar of `output`, if there is a readable, well-formed one.
pub fn read(output: &Path) -> Option<Sidecar> {
    let bytes = std::fs::read(path_of(output)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `output` is already what this run would make: it exists with the size its
/// sidecar records, and the sidecar says ok for the same version, operation, options and
/// input fingerprint.
pub fn is_done(output: &Path, operation: &str, options: &Value, input: &Value) -> bool {
    let Some(sc) = read(output) else {
        return false;
    };
    let size = std::fs::symlink_metadata(output)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    sc.result == "ok"
        && sc.subroot_version == VERSION
        && sc.operation == operation
        && &sc.options == options
        && &sc.input == input
        && size.is_some()
        && sc.output.size == size
}

/// Write the sidecar of `output` atomically (temporary file + rename), replacing any.
pub fn write(output: &Path, sc: &Sidecar) -> Result<()> {
    let path = path_of(output);
    let out = AtomicOutput::create(&path, true)?;
    let mut text = serde_json::to_vec_pretty(sc)?;
    text.push(b'\n');
    (&mut out.file())
        .write_all(&text)
        .with_context(|| format!("cannot write {}", out.temp_path().display()))?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_only_when_everything_matches() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in.raw");
        std::fs::write(&input, vec![1u8; 4096]).unwrap();
        let output = d.path().join("in.qcow2");
        std::fs::write(&output, b"output").unwrap();
        let fp = fingerprint(&input);
        assert_eq!(fp["size"], 4096);
        assert_eq!(fp["backing_chain"], json!([]));
        let opts = json!({"output_format": "raw"});
        let mut sc = Sidecar {
            subroot_version: VERSION.into(),
            operation: "convert".into(),
            options: opts.clone(),
            input: fp.clone(),
            output: OutputInfo {
                size: Some(6),
                ..OutputInfo::new(&output)
            },
            result: "ok".into(),
            error: None,
            seconds: 0.5,
            bytes_read: 4096,
            bytes_written: 6,
        };
        write(&output, &sc).unwrap();
        assert_eq!(read(&output).as_ref(), Some(&sc));
        assert!(is_done(&output, "convert", &opts, &fp));
        assert!(!is_done(&output, "relayout", &opts, &fp));
        assert!(!is_done(
            &output,
            "convert",
            &json!({"output_format": "qcow2"}),
            &fp
        ));
        std::fs::write(&input, vec![1u8; 8192]).unwrap();
        assert!(!is_done(&output, "convert", &opts, &fingerprint(&input)));
        sc.result = "failed".into();
        write(&output, &sc).unwrap();
        assert!(!is_done(&output, "convert", &opts, &fp));
        sc.result = "ok".into();
        sc.subroot_version = "0.0.0-other".into();
        write(&output, &sc).unwrap();
        assert!(!is_done(&output, "convert", &opts, &fp));
    }
}
