//! The nested real-KVM harness's results (scripts/nested.sh): its L1 console log and the inner
//! guest's scanout PNG, from this test's own run or, under `scripts/nested.sh --test`, the run
//! that just finished.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{repo_root, Image};

/// Decodes a PNG into RGB.
pub fn read_png(path: &Path) -> Image {
    let file = std::fs::File::open(path).unwrap();
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|px| [px[0], px[1], px[2]])
        .collect();
    Image {
        width: info.width,
        height: info.height,
        rgb,
    }
}

/// The rest of the first L1 log line containing `prefix`, after it; panics when none has it.
pub fn line<'a>(log: &'a str, prefix: &str) -> &'a str {
    log.lines()
        .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest.trim()))
        .unwrap_or_else(|| panic!("no {prefix:?} line in the L1 log"))
}

/// The results directory of `suite` (run now unless VGPU_NESTED_REUSE=1), or None when the test
/// says it skipped: the harness takes minutes, so it runs only with VGPU_NESTED=1.
pub fn results(test: &str, suite: &str, default_out: &str) -> Option<(PathBuf, String)> {
    if std::env::var("VGPU_NESTED").map_or(true, |v| v != "1") {
        eprintln!(
            "SKIPPED {test}: takes minutes of QEMU/TCG; run scripts/nested.sh --suite {suite} \
             --test (or set VGPU_NESTED=1)"
        );
        return None;
    }
    let qemu = Command::new("qemu-system-x86_64").arg("--version").output();
    if qemu.is_err() {
        eprintln!("SKIPPED {test}: qemu-system-x86_64 missing (scripts/setup.sh installs it)");
        return None;
    }
    let root = repo_root();
    let out = std::env::var_os("VGPU_NESTED_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(default_out));
    if std::env::var("VGPU_NESTED_REUSE").map_or(true, |v| v != "1") {
        let status = Command::new("bash")
            .arg(root.join("scripts/nested.sh"))
            .args(["--suite", suite, "--out"])
            .arg(&out)
            .status()
            .unwrap();
        let log = std::fs::read_to_string(out.join("l1.log")).unwrap_or_default();
        assert!(
            status.success(),
            "scripts/nested.sh failed; L1 console:\n{log}"
        );
    }
    let log = std::fs::read(out.join("l1.log")).unwrap();
    // The console carries carriage returns and the VMM's coloured log lines.
    let log = String::from_utf8_lossy(&log).replace('\r', "");
    Some((out, log))
}
