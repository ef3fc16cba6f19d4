#![no_main]
//! Placeholder fuzz target, replaced when its crate lands.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data.len();
});
