//! A hostile guest's serial console (or a broken test program's stdout) against the per-case
//! parsers of `vgpu conformance`: every line goes through both the vk-conformance and the dEQP
//! reader. They must never panic, and every result they record names a case.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::conformance::caselog::CaseLog;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut checks = CaseLog::default();
    let mut deqp = CaseLog::default();
    for line in text.lines() {
        checks.check_line("vk-conformance.", line);
        deqp.deqp_line(line);
    }
    for (name, _, _) in checks.finished.iter() {
        assert!(name.starts_with("vk-conformance."));
    }
    assert!(deqp.finished.iter().all(|(name, _, _)| !name.contains('\n')));
});
