//! Hostile vtest messages: the first 4 bytes pick the command, the rest is its payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use venus::vtest::protocol::parse;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let cmd = u32::from_le_bytes(data[..4].try_into().unwrap()) % 40;
    let payload = &data[4..data.len() - (data.len() - 4) % 4];
    let _ = parse(cmd, payload);
});
