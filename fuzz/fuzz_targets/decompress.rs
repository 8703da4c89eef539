//! Fuzz each decompressor front of the cpio codec on raw bytes: the first input byte picks
//! the compression (or auto-detection) and whether all members are read; the rest is the
//! stream. Output is read up to a budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Read};
use subroot_formats::cpio::{detect, Compression, Decoder, Members, PeekReader};

const READ_BUDGET: u64 = 32 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let members = if sel & 0x80 != 0 {
        Members::All
    } else {
        Members::First
    };
    let _ = detect(stream);
    let input = PeekReader::new(Cursor::new(stream));
    let idx = (sel & 0x7f) as usize % (Compression::ALL.len() + 1);
    let dec = match Compression::ALL.get(idx) {
        Some(&c) => Decoder::new(c, input, members),
        None => Decoder::detect(input, members),
    };
    let Ok(mut dec) = dec else {
        return;
    };
    let _ = (dec.compression(), dec.xz_check());
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    while total < READ_BUDGET {
        match dec.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    let _ = dec.consumed();
    let _ = dec.into_inner();
});
