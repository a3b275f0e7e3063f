//! A hostile vhost-user GPU backend against the frontend's display socket
//! (vmm::vhost_user_frontend::gpu_display): random messages of every request type, with
//! scanout ids, modes, update rectangles and payload lengths the backend chose; the display
//! must check them all, and a screenshot afterwards must not panic.
//!
//! Input: records `[request, len_lo, len_hi, body...]`.
#![no_main]

use gpu_interface::DisplayMode;
use libfuzzer_sys::fuzz_target;
use vmm::vhost_user_frontend::gpu_display::GpuDisplay;
use vmm::vm::Display;

fuzz_target!(|data: &[u8]| {
    let display = GpuDisplay::detached(2);
    let modes = [DisplayMode::new(64, 48), DisplayMode::new(32, 32)];
    let mut rest = data;
    while let [request, lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (body, next) = tail.split_at(len);
        display.handle(u32::from(request % 14), body, None, &modes);
        rest = next;
    }
    let mut display = display;
    for scanout in 0..3 {
        let _ = display.screenshot(scanout);
    }
});
