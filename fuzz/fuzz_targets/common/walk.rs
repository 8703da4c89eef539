//! Walk a whole tree as a reader's user would: every entry, every file's extent map and
//! content, within entry and byte budgets (a hostile input may claim huge trees).

use subroot_formats::tree::TreeSource;
use subroot_formats::Error;

/// Content bytes read per input before the walk is stopped.
const READ_BUDGET: u64 = 32 << 20;
/// Entries visited per input before the walk is stopped.
const ENTRY_BUDGET: u32 = 100_000;

/// Walk `tree` from its root, reading everything within the budgets; errors are the
/// reader's business (only panics, hangs and huge allocations are bugs).
pub fn walk_all(tree: &dyn TreeSource) {
    let mut budget = READ_BUDGET;
    let mut entries = 0u32;
    let mut buf = vec![0u8; 64 << 10];
    let _ = tree.walk(b"", &mut |e, c| {
        let _ = (e.mode(), e.name(), e.parent());
        entries += 1;
        if entries > ENTRY_BUDGET {
            return Err(Error::corrupt("fuzz entry budget exhausted"));
        }
        let Some(c) = c else { return Ok(()) };
        let _ = c.extents()?;
        loop {
            if budget == 0 {
                return Err(Error::corrupt("fuzz read budget exhausted"));
            }
            let n = c.read(&mut buf).map_err(|e| Error::io("fuzz read", e))?;
            if n == 0 {
                return Ok(());
            }
            budget = budget.saturating_sub(n as u64);
        }
    });
}
