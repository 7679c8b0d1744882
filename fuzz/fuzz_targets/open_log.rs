//! Arbitrary bytes as the body of an active or sealed segment behind a valid header: opening
//! the log (every way), reading everything, verifying and appending must never panic.
//! The per-input logic is shared with `tests/fuzz_corpus.rs`, which replays the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../tests/support/fuzz_inputs.rs"]
mod fuzz_inputs;

fuzz_target!(|data: &[u8]| {
    fuzz_inputs::open_log(data);
});
