//! POSIX ACLs in the text form GNU tar and star keep in `SCHILY.acl.access` and
//! `SCHILY.acl.default` (what `tar --acls -x` restores; it ignores the binary
//! `system.posix_acl_*` xattrs then).
//!
//! [`acl_text`] turns the standard xattr encoding into text for the writer;
//! [`acl_from_text`] goes back for the reader (numeric ids only: a name cannot be resolved
//! without the host's user database, so GNU tar's named entries are refused — GNU tar also
//! stores the binary `SCHILY.xattr.system.posix_acl_*` form, which the reader prefers).
//!
//! The xattr encoding (`posix_acl_xattr`: a little-endian u32 version 2,
//! then 8-byte entries: u16 tag, u16 permissions, u32 id).

/// The comma-separated text form (`user::rw-,user:42:rwx,group::r--,mask::rwx,other::r--`),
/// with numeric ids, or `None` when `value` is not a valid version-2 ACL.
pub fn acl_text(value: &[u8]) -> Option<String> {
    let (head, body) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*head) != 2 || body.len() % 8 != 0 {
        return None;
    }
    let mut parts = Vec::new();
    for e in body.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let (kind, qual) = match tag {
            0x01 => ("user", String::new()),
            0x02 => ("user", id.to_string()),
            0x04 => ("group", String::new()),
            0x08 => ("group", id.to_string()),
            0x10 => ("mask", String::new()),
            0x20 => ("other", String::new()),
            _ => return None,
        };
        let p = |bit: u16, c: char| if perm & bit != 0 { c } else { '-' };
        parts.push(format!(
            "{kind}:{qual}:{}{}{}",
            p(4, 'r'),
            p(2, 'w'),
            p(1, 'x')
        ));
    }
    Some(parts.join(","))
}

/// The xattr encoding of an ACL in text form: entries `TAG:QUALIFIER:PERMS[:ID]` separated
/// by `,` or newlines, numeric qualifiers (or star's trailing numeric id); `#` comments and
/// empty entries ignored. `Ok(None)` for a minimal access ACL (only the owner, group and
/// other entries: the mode bits say it all, and the kernel stores no xattr for it) when
/// `access` is set.
pub fn acl_from_text(text: &[u8], access: bool) -> Result<Option<Vec<u8>>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "ACL text is not UTF-8".to_string())?;
    let mut entries: Vec<(u16, u16, u32)> = Vec::new();
    for raw in text.split([',', '\n']) {
        let e = raw.split('#').next().unwrap_or("").trim();
        if e.is_empty() {
            continue;
        }
        let f: Vec<&str> = e.split(':').collect();
        if f.len() < 3 || f.len() > 4 {
            return Err(format!("ACL entry {e:?}: expected TAG:QUALIFIER:PERMS"));
        }
        let qual = match f.get(3) {
            Some(id) => id.to_string(),
            None => f[1].to_string(),
        };
        let id = if qual.is_empty() {
            None
        } else {
            Some(qual.parse::<u32>().map_err(|_| {
                format!("ACL entry {e:?}: the qualifier is a name, not a numeric id")
            })?)
        };
        let tag = match (f[0], id.is_some()) {
            ("user" | "u", false) => 0x01,
            ("user" | "u", true) => 0x02,
            ("group" | "g", false) => 0x04,
            ("group" | "g", true) => 0x08,
            ("mask" | "m", false) => 0x10,
            ("other" | "o", false) => 0x20,
            _ => return Err(format!("ACL entry {e:?}: unknown tag")),
        };
        let mut perm = 0u16;
        for c in f[2].chars() {
            perm |= match c {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                '-' => 0,
                _ => return Err(format!("ACL entry {e:?}: bad permissions")),
            };
        }
        entries.push((tag, perm, id.unwrap_or(u32::MAX)));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    if access && entries.iter().all(|e| matches!(e.0, 0x01 | 0x04 | 0x20)) {
        return Ok(None);
    }
    entries.sort_by_key(|&(tag, _, id)| (tag, id));
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form() {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 7, 42),
            (4, 4, u32::MAX),
            (0x10, 7, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        assert_eq!(
            acl_text(&v).as_deref(),
            Some("user::rw-,user:42:rwx,group::r--,mask::rwx,other::r--")
        );
        assert_eq!(acl_text(&v[..7]), None);
    }

    #[test]
    fn text_back_to_xattr() {
        let t = "user::rw-,user:42:rwx,group::r--,mask::rwx,other::r--";
        let v = acl_from_text(t.as_bytes(), true).unwrap().unwrap();
        assert_eq!(acl_text(&v).as_deref(), Some(t));
        let nl = acl_from_text(
            b"user::rw-\nuser:42:rwx\ngroup::r--\nmask::rwx\nother::r--\n",
            true,
        );
        assert_eq!(nl.unwrap(), Some(v));
        assert_eq!(
            acl_from_text(b"user::rwx\ngroup::r-x\nother::r-x\n", true),
            Ok(None)
        );
        assert!(acl_from_text(b"user::rwx\ngroup::r-x\nother::r-x\n", false)
            .unwrap()
            .is_some());
        assert!(acl_from_text(b"user:_apt:rwx", true).is_err());
        // star: the numeric id follows the name.
        assert!(acl_from_text(
            b"user:_apt:rwx:42,user::rwx,group::r--,mask::rwx,other::---",
            true
        )
        .unwrap()
        .is_some());
    }
}
