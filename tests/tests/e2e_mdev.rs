//! `vgpu mdev` on a real kernel's mediated devices: a QEMU (TCG) guest loads Linux's mbochs
//! sample (built out of tree against the guest kernel by guests/mdev/build.sh) and runs
//! guests/mdev/mdev-suite, which drives `vgpu mdev` and mdevctl 1.2 side by side: the same
//! listings byte for byte, instances made until the pool is empty and one more refused plainly,
//! the pool whole again after stopping, slices defined by one tool and started by the other,
//! and stopping by either.

use std::time::Duration;

use vgpu_tests::{repo_root, skipped, GpuDevice, Guest, GuestSpec};

const TEST: &str = "e2e_mdev_on_mbochs_matches_mdevctl";

#[test]
fn e2e_mdev_on_mbochs_matches_mdevctl() {
    let mut spec = GuestSpec::new(GpuDevice::QemuBuiltin, &["mdev-suite"]);
    spec.initrd = Some(repo_root().join("guests/out/mdev.cpio.gz"));
    let guest = match Guest::boot(&spec) {
        Ok(g) => g,
        Err(e) if skipped(TEST, &e) => {
            eprintln!(
                "{TEST}: the image comes from guests/mdev/build.sh (scripts/test.sh runs it)"
            );
            return;
        }
        Err(e) => panic!("{TEST}: {e}"),
    };
    guest
        .wait_done(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{TEST}: {e}"));
    let results = guest.results();
    for (name, status, detail) in &results {
        eprintln!("{TEST}: {name} {status} {detail}");
    }
    for name in [
        "load",
        "types-match",
        "fill",
        "types-match-full",
        "stop",
        "ours-defined-theirs-started",
        "theirs-defined-ours-started",
        "list-match",
        "stop-cross",
        "stop-twice",
    ] {
        let got = guest.result(name);
        assert!(
            got.as_ref().is_some_and(|(status, _)| status == "PASS"),
            "{name}: {got:?}"
        );
    }
    let failed: Vec<_> = results.iter().filter(|r| r.1 != "PASS").collect();
    assert!(failed.is_empty(), "failed: {failed:?}");
    let _ = guest.quit();
}
