//! The one place that reads `SOURCE_DATE_EPOCH`: the clock reproducible outputs use.

use anyhow::{Context, Result};

/// `SOURCE_DATE_EPOCH` as a number of seconds, if set.
pub fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            Ok(Some(v.trim().parse::<u64>().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?))
        }
        _ => Ok(None),
    }
}
