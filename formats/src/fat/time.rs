//! FAT timestamps ↔ [`Timestamp`], treating FAT's zone-less local time as UTC.
//!
//! FAT dates run from 1980-01-01 to 2107-12-31; times outside are clamped to the nearest
//! representable one. Write times have 2-second resolution (rounded down, as Linux and
//! mtools do), creation times 10 ms, access times a whole day.

use super::read::datetime;
use crate::calendar::{civil_from_days, days_from_civil};
use crate::tree::Timestamp;

/// 1980-01-01 00:00:00 UTC.
const MIN_SEC: i64 = 315_532_800;

/// Seconds of 2107-12-31 23:59:59 UTC.
fn max_sec() -> i64 {
    days_from_civil(2107, 12, 31) * 86400 + 86399
}

/// A timestamp as a FAT date and time (UTC), clamped to FAT's range; milliseconds kept
/// to 10 ms (only creation times store them).
pub fn to_fat(t: Timestamp) -> fatfs::DateTime {
    let (sec, nsec) = if t.sec < MIN_SEC {
        (MIN_SEC, 0)
    } else if t.sec > max_sec() {
        (max_sec(), 990_000_000)
    } else {
        (t.sec, t.nsec.min(999_999_999))
    };
    let (y, m, d) = civil_from_days(sec.div_euclid(86400));
    let s = sec.rem_euclid(86400);
    fatfs::DateTime {
        date: fatfs::Date {
            year: y as u16,
            month: m as u16,
            day: d as u16,
        },
        time: fatfs::Time {
            hour: (s / 3600) as u16,
            min: (s / 60 % 60) as u16,
            sec: (s % 60) as u16,
            millis: (nsec / 10_000_000 * 10) as u16,
        },
    }
}

/// A FAT date and time (read as UTC) as a timestamp.
pub fn from_fat(dt: fatfs::DateTime) -> Timestamp {
    datetime(dt.date, dt.time)
}

/// Encode a date as the on-disk 16-bit FAT date.
pub(crate) fn encode_date(d: fatfs::Date) -> u16 {
    (d.year.saturating_sub(1980).min(127) << 9) | ((d.month & 0xF) << 5) | (d.day & 0x1F)
}

/// Encode a time as the on-disk 16-bit FAT time (2-second units) and the 10 ms byte of
/// creation times.
pub(crate) fn encode_time(t: fatfs::Time) -> (u16, u8) {
    let dos = ((t.hour & 0x1F) << 11) | ((t.min & 0x3F) << 5) | ((t.sec / 2) & 0x1F);
    let tenth = (t.millis / 10 + (t.sec % 2) * 100).min(199) as u8;
    (dos, tenth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for sec in [MIN_SEC, 1_000_000_000, 1_700_000_001, max_sec() - 1] {
            let t = Timestamp { sec, nsec: 0 };
            let back = from_fat(to_fat(t));
            assert_eq!(back.sec, sec, "{sec}");
        }
        assert_eq!(from_fat(to_fat(Timestamp { sec: 0, nsec: 5 })).sec, MIN_SEC);
        let dt = to_fat(Timestamp {
            sec: 1_700_000_001,
            nsec: 0,
        });
        // 2023-11-14 22:13:21 UTC: 10 two-second units, 22 hours, one odd second in the byte.
        let (dos, tenth) = encode_time(dt.time);
        assert_eq!((dos & 0x1F, dos >> 11, tenth), (10, 22, 100));
        assert_eq!(encode_date(dt.date), ((2023 - 1980) << 9) | (11 << 5) | 14);
    }

    #[test]
    fn civil() {
        for z in [-1, 0, 3652, 11017, 50000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
