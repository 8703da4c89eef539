//! POSIX ACLs in the text form GNU tar and star keep in `SCHILY.acl.access` and
//! `SCHILY.acl.default` (what `tar --acls -x` restores; it ignores the binary
//! `system.posix_acl_*` xattrs then).
//!
//! Input is the standard xattr encoding (`posix_acl_xattr`: a little-endian u32 version 2,
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
}
