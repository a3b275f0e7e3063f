//! Hostile streams into the generated decoders and reply encoders alone (every id resolves, so
//! the fuzzer reaches every served command's arguments): decoding must end in Ok or an error,
//! never a panic, and never allocate past the arena's budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use venus::protocol::generated::decode_only;
use venus::protocol::wire::{Arena, Cursor, Encoder, Lookup};

struct AnyObject;

impl Lookup for AnyObject {
    fn lookup(&self, id: u64, _objtype: i32) -> Option<u64> {
        Some(id)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut arena = Arena::default();
    let mut cursor = Cursor::new(data);
    while cursor.has_command() {
        let mut reply = Encoder::default();
        if decode_only(&mut cursor, &mut arena, &AnyObject, &mut reply).is_err() {
            break;
        }
        let _ = reply.finish();
    }
});
