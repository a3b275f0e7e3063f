//! vhost-user backends under our VMM with real KVM, nested: scripts/nested.sh --suite vhost-user
//! boots L2 on `vgpu run` with its root file system on virtio-fs (virtiofsd) and two
//! vhost-user-blk disks (qemu-storage-daemon), one of whose backends L1 kills mid-run. L1
//! checks contents both ways and prints a result line per check; here every one must pass, and
//! the colour bars L2 then drew on a virtio-gpu our vhost-user GPU backend and QEMU's served
//! must be in the screenshots. It
//! takes minutes, so it runs only with VGPU_NESTED=1 (scripts/nested.sh --suite vhost-user
//! --test).

use vgpu_tests::nested::{read_png, results};

/// What L1 checks (guests/nested/l1-vhost-user), each a "VGPU-RESULT NAME PASS ..." line.
const CHECKS: &[&str] = &[
    "vu-fs-root",
    "vu-fs-read",
    "vu-fs-write",
    "vu-blk-read",
    "vu-blk-write",
    "vu-blk-second-disk",
    "vu-backend-killed",
    "vu-backend-reconnected",
    "vu-disconnect-logged",
    "vu-vm-survived",
    "vu-gpu-ours",
    "vu-gpu-host-visible",
    "vu-gpu-qemu",
];

#[test]
fn inner_linux_guest_boots_from_virtio_fs_and_survives_a_dead_disk_backend() {
    let Some((out, log)) = results(
        "nested_vhost_user",
        "vhost-user",
        "target/nested-vhost-user",
    ) else {
        return;
    };
    assert!(
        log.contains("VGPU-RESULT nested-kvm PASS"),
        "no /dev/kvm in L1:\n{log}"
    );
    assert!(
        log.contains("VGPU-RESULT vu-suite DONE"),
        "the suite did not finish:\n{log}"
    );
    for check in CHECKS {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("VGPU-RESULT {check} ")))
            .unwrap_or_else(|| panic!("no result for {check}:\n{log}"));
        assert!(
            line.starts_with(&format!("VGPU-RESULT {check} PASS")),
            "{line}\n\nL1 console:\n{log}"
        );
    }
    assert!(
        !log.contains("panicked"),
        "the VMM panicked somewhere:\n{log}"
    );
    // L2's colour bars, drawn through `--gpu vhost-user` with each backend.
    for backend in ["ours", "qemu"] {
        let image = read_png(&out.join(format!("l2-gpu-{backend}.png")));
        assert_eq!((image.width, image.height), (1024, 768), "{backend}");
        image
            .check_bars()
            .unwrap_or_else(|e| panic!("{backend} backend: {e}"));
    }
}
