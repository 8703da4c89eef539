//! Human sizes on the command line: `512`, `64K`, `200M`, `2G`, `1T` (powers of 1024,
//! like qemu-img), with an optional `B`/`iB` suffix.

/// Parse a size; the error says what was expected.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        "E" => 60,
        _ => {
            return Err(format!(
                "`{s}` is not a size: expected a number with an optional K, M, G, T, P or E suffix"
            ))
        }
    };
    let n: u64 = num.parse().map_err(|_| {
        format!("`{s}` is not a size: expected a number with an optional K, M, G, T, P or E suffix")
    })?;
    n.checked_mul(1u64 << shift)
        .filter(|_| shift < 64)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Print a byte count the way people read it: `2 GiB`, `1.5 MiB`, `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else if (v - v.round()).abs() < 0.005 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999E").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(2 << 30), "2 GiB");
        assert_eq!(human(1536 << 10), "1.5 MiB");
    }
}
