//! The VMDK text descriptor: `key=value` lines (CID, parentCID, parentFileNameHint,
//! createType) and extent lines (`RW 2048 FLAT "disk-flat.vmdk" 0`), either a file of
//! its own or embedded in a hosted sparse extent.

use crate::{Error, Result};

/// The CID that says "no parent".
pub const NO_PARENT_CID: u32 = 0xffff_ffff;
/// Longest descriptor read (VMware's own limit is far below this).
pub const MAX_DESCRIPTOR: u64 = 1 << 20;

/// How an extent stores its sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentType {
    /// The sectors as they are, from `offset` sectors into the file (FLAT, and ESXi's VMFS).
    Flat,
    /// A hosted sparse extent file ("KDMV").
    Sparse,
    /// No file: reads as zeros.
    Zero,
}

/// One extent line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentLine {
    /// Sectors of the disk this extent holds.
    pub sectors: u64,
    /// How they are stored.
    pub kind: ExtentType,
    /// The extent file as written (`None` for ZERO).
    pub file: Option<String>,
    /// Sectors into the file where a flat extent starts.
    pub offset: u64,
}

/// A parsed descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// This image's content ID.
    pub cid: Option<u32>,
    /// The parent's content ID ([`NO_PARENT_CID`] when there is none).
    pub parent_cid: Option<u32>,
    /// Where the parent is, as written.
    pub parent_hint: Option<String>,
    /// `createType` ("monolithicSparse", "vmfs", ...).
    pub create_type: Option<String>,
    /// The extents, in disk order.
    pub extents: Vec<ExtentLine>,
}

impl Descriptor {
    /// The parent's file name when the descriptor names a parent.
    pub fn parent(&self) -> Option<&str> {
        match self.parent_cid {
            Some(NO_PARENT_CID) => None,
            _ => self.parent_hint.as_deref(),
        }
    }

    /// Parse descriptor text (trailing NULs of an embedded descriptor are ignored).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let text = std::str::from_utf8(&bytes[..end])
            .map_err(|_| Error::corrupt("the VMDK descriptor is not UTF-8 text".to_string()))?;
        let mut d = Descriptor::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| {
                Error::corrupt(format!("VMDK descriptor line {}: {what}: {line:?}", i + 1))
            };
            if let Some(kind) = ["RW", "RDONLY", "NOACCESS"]
                .iter()
                .find(|a| line.starts_with(&format!("{a} ")))
            {
                d.extents
                    .push(parse_extent(&line[kind.len()..]).map_err(|m| bad(&m))?);
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(bad("expected key=value or an extent line"));
            };
            let key = key.trim();
            let value = unquote(value.trim());
            let hex = || u32::from_str_radix(value, 16).map_err(|_| bad("expected a hex CID"));
            match key {
                "CID" => d.cid = Some(hex()?),
                "parentCID" => d.parent_cid = Some(hex()?),
                "parentFileNameHint" => d.parent_hint = Some(value.to_string()),
                "createType" => d.create_type = Some(value.to_string()),
                _ => {}
            }
        }
        Ok(d)
    }
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// `SECTORS TYPE ["FILE" [OFFSET]]` after the access word.
fn parse_extent(rest: &str) -> std::result::Result<ExtentLine, String> {
    let rest = rest.trim_start();
    let (sectors, rest) = rest
        .split_once(' ')
        .ok_or("expected a sector count and type")?;
    let sectors: u64 = sectors
        .parse()
        .map_err(|_| format!("sector count {sectors:?} is not a number"))?;
    let rest = rest.trim_start();
    let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let kind = match kind {
        "FLAT" | "VMFS" => ExtentType::Flat,
        "SPARSE" => ExtentType::Sparse,
        "ZERO" => ExtentType::Zero,
        other => return Err(format!("extent type {other:?} is not supported")),
    };
    if kind == ExtentType::Zero {
        return Ok(ExtentLine {
            sectors,
            kind,
            file: None,
            offset: 0,
        });
    }
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix('"')
        .ok_or("expected a quoted file name")?;
    let (file, rest) = rest.split_once('"').ok_or("unterminated file name")?;
    if file.is_empty() {
        return Err("empty file name".into());
    }
    let offset = match rest.trim() {
        "" => 0,
        o => o
            .parse()
            .map_err(|_| format!("extent offset {o:?} is not a number"))?,
    };
    Ok(ExtentLine {
        sectors,
        kind,
        file: Some(file.to_string()),
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_and_esxi_descriptors() {
        let d = Descriptor::parse(
            b"# Disk DescriptorFile\nversion=1\nCID=52bd3f2a\nparentCID=ffffffff\n\
              createType=\"vmfs\"\n\n# Extent description\nRW 41943040 VMFS \"a-flat.vmdk\"\n\
              RW 2048 FLAT \"b b.vmdk\" 16\nRDONLY 8 ZERO\nddb.adapterType = \"lsilogic\"\n\0\0",
        )
        .unwrap();
        assert_eq!(d.cid, Some(0x52bd3f2a));
        assert_eq!(d.parent(), None);
        assert_eq!(d.create_type.as_deref(), Some("vmfs"));
        assert_eq!(d.extents.len(), 3);
        assert_eq!(d.extents[1].file.as_deref(), Some("b b.vmdk"));
        assert_eq!(d.extents[1].offset, 16);
        assert_eq!(d.extents[2].kind, ExtentType::Zero);
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in [
            &b"RW x SPARSE \"a\""[..],
            b"RW 8 SESPARSE \"a\"",
            b"RW 8 FLAT a",
            b"RW 8 FLAT \"a",
            b"CID=zz",
            b"just words",
        ] {
            let e = Descriptor::parse(bad).unwrap_err().to_string();
            assert!(e.contains("VMDK descriptor line 1"), "{e}");
        }
    }
}
