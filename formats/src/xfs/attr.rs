//! Extended attributes: short form (in the inode's attribute fork), leaf blocks and
//! node (dabtree) blocks above them, values stored locally or in remote blocks (`XARM`
//! headers on v5). Namespaces map to full names (`user.`, `trusted.`, `security.`); XFS's
//! own ACLs, `trusted.SGI_ACL_FILE`/`SGI_ACL_DEFAULT` in its big-endian `xfs_acl` layout,
//! become `system.posix_acl_access`/`_default` in the standard `posix_acl_xattr` encoding
//! (what `getfattr` shows on a mounted XFS). Parent pointers and incomplete attributes are
//! not user-visible and are skipped.

use super::bmap::{fork_map, read_fork, Mapping};
use super::inode::{Fork, Inode, FMT_BTREE, FMT_EXTENTS, FMT_LOCAL};
use super::sb::Superblock;
use super::{be16, be32, be64, corrupt, crc_ok};
use crate::block::BlockDevice;
use crate::Result;
use std::collections::HashSet;

/// Attribute entry flags.
const ATTR_LOCAL: u8 = 0x1;
const ATTR_ROOT: u8 = 0x2;
const ATTR_SECURE: u8 = 0x4;
const ATTR_PARENT: u8 = 0x8;
const ATTR_INCOMPLETE: u8 = 0x80;
/// Largest value Linux stores (`XATTR_SIZE_MAX`).
const MAX_VALUE: usize = 65536;
/// Dabtree levels followed down to the first leaf.
const MAX_LEVELS: usize = 8;

/// The extended attributes of `inode`, as full names and values, in on-disk order.
pub fn xattrs(
    dev: &dyn BlockDevice,
    sb: &Superblock,
    inode: &Inode,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if !inode.has_attr_fork() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    match inode.aformat {
        FMT_LOCAL => short_form(inode, &mut out)?,
        FMT_EXTENTS | FMT_BTREE => {
            if inode.anextents > 0 {
                Blocks::new(dev, sb, inode)?.all(&mut out)?;
            }
        }
        f => {
            return Err(corrupt(format!(
                "inode {}: attribute fork format {f} is not valid",
                inode.ino
            )))
        }
    }
    Ok(out)
}

/// Add one attribute under its full name (converting ACLs), unless it is not visible.
fn push(
    ino: u64,
    flags: u8,
    name: &[u8],
    value: Vec<u8>,
    out: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    if flags & (ATTR_PARENT | ATTR_INCOMPLETE) != 0 {
        return Ok(());
    }
    let (full, value) = match (flags & (ATTR_ROOT | ATTR_SECURE), name) {
        (ATTR_ROOT, b"SGI_ACL_FILE") => (b"system.posix_acl_access".to_vec(), acl(ino, &value)?),
        (ATTR_ROOT, b"SGI_ACL_DEFAULT") => {
            (b"system.posix_acl_default".to_vec(), acl(ino, &value)?)
        }
        (ns, _) => {
            let prefix: &[u8] = match ns {
                ATTR_ROOT => b"trusted.",
                ATTR_SECURE => b"security.",
                0 => b"user.",
                _ => {
                    return Err(corrupt(format!(
                        "inode {ino}: attribute {:?} is in two namespaces",
                        String::from_utf8_lossy(name)
                    )))
                }
            };
            ([prefix, name].concat(), value)
        }
    };
    out.push((full, value));
    Ok(())
}

/// ACL tags that carry an id.
const ACL_USER: u32 = 0x02;
const ACL_GROUP: u32 = 0x08;

/// Convert an `xfs_acl` (big-endian count, then 12-byte entries of tag, id, perm) to the
/// `posix_acl_xattr` encoding (version 2, little-endian, ids undefined for the tags
/// without one).
fn acl(ino: u64, v: &[u8]) -> Result<Vec<u8>> {
    let n = be32(v, 0) as usize;
    if v.len() < 4 || n > 8192 || v.len() != 4 + n * 12 {
        return Err(corrupt(format!(
            "inode {ino}: an ACL of {} bytes does not hold the {n} entries it counts",
            v.len()
        )));
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    for i in 0..n {
        let e = 4 + i * 12;
        let tag = be32(v, e);
        let id = if tag == ACL_USER || tag == ACL_GROUP {
            be32(v, e + 4)
        } else {
            u32::MAX
        };
        out.extend_from_slice(&(tag as u16).to_le_bytes());
        out.extend_from_slice(&be16(v, e + 8).to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

/// A short-form attribute list (`xfs_attr_sf_hdr` and entries).
fn short_form(inode: &Inode, out: &mut Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
    let f = inode.fork(Fork::Attr);
    let total = usize::from(be16(f, 0));
    let count = usize::from(*f.get(2).unwrap_or(&0));
    if total > f.len() || total < 4 {
        return Err(corrupt(format!(
            "inode {}: short-form attributes of {total} bytes in a {}-byte fork",
            inode.ino,
            f.len()
        )));
    }
    let mut p = 4;
    for i in 0..count {
        if p + 3 > total {
            return Err(corrupt(format!(
                "inode {}: attribute {i} is cut off",
                inode.ino
            )));
        }
        let (nl, vl, flags) = (usize::from(f[p]), usize::from(f[p + 1]), f[p + 2]);
        let end = p + 3 + nl + vl;
        if end > total {
            return Err(corrupt(format!(
                "inode {}: attribute {i} runs past the attribute list",
                inode.ino
            )));
        }
        push(
            inode.ino,
            flags,
            &f[p + 3..p + 3 + nl],
            f[p + 3 + nl..end].to_vec(),
            out,
        )?;
        p = end;
    }
    Ok(())
}

/// The block-based attribute fork of one inode.
struct Blocks<'a> {
    dev: &'a dyn BlockDevice,
    sb: &'a Superblock,
    ino: u64,
    map: Vec<Mapping>,
    buf: Vec<u8>,
}

impl<'a> Blocks<'a> {
    fn new(dev: &'a dyn BlockDevice, sb: &'a Superblock, inode: &Inode) -> Result<Self> {
        Ok(Blocks {
            dev,
            sb,
            ino: inode.ino,
            map: fork_map(dev, sb, inode, Fork::Attr)?,
            buf: vec![0u8; sb.block_size as usize],
        })
    }

    /// Read attribute fork block `blk` into `self.buf`, checking its dabtree header;
    /// returns its magic.
    fn read(&mut self, blk: u64) -> Result<u16> {
        let ino = self.ino;
        read_fork(
            self.dev,
            self.sb,
            &self.map,
            blk << self.sb.blocklog,
            &mut self.buf,
        )
        .map_err(|e| corrupt(format!("inode {ino}: attribute block {blk}: {e}")))?;
        let b = &self.buf;
        if self.sb.v5() && (!crc_ok(b, 12) || be64(b, 48) != ino) {
            return Err(corrupt(format!(
                "inode {ino}: attribute block {blk}: its CRC or owner does not match"
            )));
        }
        Ok(be16(b, 8))
    }

    /// Every attribute: down the leftmost path of the dabtree to the first leaf, then
    /// along the leaves' forward links.
    fn all(&mut self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let (leaf, node, hdr_node, hdr_leaf) = if self.sb.v5() {
            (0x3bee, 0x3ebe, 64, 80)
        } else {
            (0xfbee, 0xfebe, 16, 32)
        };
        let ino = self.ino;
        let mut blk = 0u64;
        let mut levels = 0;
        loop {
            let magic = self.read(blk)?;
            if magic == leaf {
                break;
            }
            if magic != node || levels >= MAX_LEVELS {
                return Err(corrupt(format!(
                    "inode {ino}: attribute block {blk}: expected a leaf or node magic, found \
                     0x{magic:04x} (level {levels})"
                )));
            }
            let count = be16(&self.buf, if self.sb.v5() { 56 } else { 12 });
            if count == 0 {
                return Err(corrupt(format!(
                    "inode {ino}: attribute node {blk} is empty"
                )));
            }
            blk = u64::from(be32(&self.buf, hdr_node + 4));
            levels += 1;
        }
        let mut seen = HashSet::new();
        loop {
            if !seen.insert(blk) || seen.len() as u64 > self.map.iter().map(|m| m.len).sum::<u64>()
            {
                return Err(corrupt(format!(
                    "inode {ino}: attribute leaves loop back to block {blk}"
                )));
            }
            self.leaf(blk, hdr_leaf, out)?;
            let forw = u64::from(be32(&self.buf, 0));
            if forw == 0 {
                return Ok(());
            }
            blk = forw;
            if self.read(blk)? != leaf {
                return Err(corrupt(format!(
                    "inode {ino}: attribute block {blk}, linked from a leaf, is not a leaf"
                )));
            }
        }
    }

    /// The attributes of the leaf in `self.buf` (block `blk`).
    fn leaf(&mut self, blk: u64, hdr: usize, out: &mut Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let ino = self.ino;
        let bad = |m: String| corrupt(format!("inode {ino}: attribute leaf {blk}: {m}"));
        let bs = self.buf.len();
        let count = usize::from(be16(&self.buf, hdr - if self.sb.v5() { 24 } else { 20 }));
        if hdr + count * 8 > bs {
            return Err(bad(format!("{count} entries do not fit")));
        }
        let mut remote = Vec::new();
        for i in 0..count {
            let e = hdr + i * 8;
            let idx = usize::from(be16(&self.buf, e + 4));
            let flags = self.buf[e + 6];
            let b = &self.buf;
            if flags & ATTR_LOCAL != 0 {
                let vl = usize::from(be16(b, idx));
                let nl = usize::from(*b.get(idx + 2).unwrap_or(&0));
                let end = idx + 3 + nl + vl;
                if end > bs {
                    return Err(bad(format!("entry {i} runs past the block")));
                }
                let (name, value) = (
                    b[idx + 3..idx + 3 + nl].to_vec(),
                    b[idx + 3 + nl..end].to_vec(),
                );
                push(ino, flags, &name, value, out)?;
            } else {
                let vblk = u64::from(be32(b, idx));
                let vl = be32(b, idx + 4) as usize;
                let nl = usize::from(*b.get(idx + 8).unwrap_or(&0));
                if idx + 9 + nl > bs || vl > MAX_VALUE {
                    return Err(bad(format!("remote entry {i} is not valid")));
                }
                remote.push((flags, b[idx + 9..idx + 9 + nl].to_vec(), vblk, vl));
            }
        }
        for (flags, name, vblk, vl) in remote {
            let value = self.remote(vblk, vl)?;
            push(ino, flags, &name, value, out)?;
        }
        Ok(())
    }

    /// A remote value of `len` bytes starting at attribute fork block `blk`.
    fn remote(&self, blk: u64, len: usize) -> Result<Vec<u8>> {
        let ino = self.ino;
        let bs = self.sb.block_size as usize;
        let mut value = Vec::with_capacity(len);
        if !self.sb.v5() {
            value.resize(len, 0);
            read_fork(self.dev, self.sb, &self.map, blk * bs as u64, &mut value)
                .map_err(|e| corrupt(format!("inode {ino}: remote attribute value: {e}")))?;
            return Ok(value);
        }
        let mut b = vec![0u8; bs];
        let mut blk = blk;
        while value.len() < len {
            read_fork(self.dev, self.sb, &self.map, blk * bs as u64, &mut b)
                .map_err(|e| corrupt(format!("inode {ino}: remote attribute value: {e}")))?;
            let off = be32(&b, 4) as usize;
            let n = be32(&b, 8) as usize;
            if &b[..4] != b"XARM"
                || !crc_ok(&b, 12)
                || be64(&b, 32) != ino
                || off != value.len()
                || n == 0
                || n > bs - 56
                || off + n > len
            {
                return Err(corrupt(format!(
                    "inode {ino}: remote attribute block {blk}: bad header (magic, CRC, \
                     owner or range)"
                )));
            }
            value.extend_from_slice(&b[56..56 + n]);
            blk += 1;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfs_acl_becomes_posix_acl_xattr() {
        let mut v = 2u32.to_be_bytes().to_vec();
        for (tag, id, perm) in [(1u32, 0u32, 6u16), (2, 1000, 4)] {
            v.extend_from_slice(&tag.to_be_bytes());
            v.extend_from_slice(&id.to_be_bytes());
            v.extend_from_slice(&perm.to_be_bytes());
            v.extend_from_slice(&[0, 0]);
        }
        let x = acl(1, &v).unwrap();
        assert_eq!(
            x,
            [
                &2u32.to_le_bytes()[..],
                &[1, 0, 6, 0],
                &u32::MAX.to_le_bytes(),
                &[2, 0, 4, 0],
                &1000u32.to_le_bytes()
            ]
            .concat()
        );
        assert!(acl(1, &v[..20]).is_err());
    }
}
