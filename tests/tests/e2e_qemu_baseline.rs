//! The baselines the benchmark compares against, and a check of the harness itself: the guest's
//! KMS program drives QEMU's built-in virtio-gpu-pci and QEMU's own vhost-user-gpu backend, and
//! QMP screendump shows the colour bars it drew.

use std::time::Duration;

use vgpu_tests::{skipped, GpuDevice, Guest, GuestSpec};

fn kms_pattern_shows_in_screendump(test: &str, device: GpuDevice) {
    let mut spec = GuestSpec::new(device, &["vgpu-kms --hold"]);
    spec.hold = true;
    let mut guest = match Guest::boot(&spec) {
        Ok(g) => g,
        Err(e) if skipped(test, &e) => return,
        Err(e) => panic!("{test}: {e}"),
    };
    guest.wait_done(Duration::from_secs(60)).unwrap();
    assert_eq!(
        guest.result("kms-modeset").map(|r| r.0).as_deref(),
        Some("PASS"),
        "{:?}",
        guest.results()
    );
    assert_eq!(
        guest.result("kms-dirtyfb").map(|r| r.0).as_deref(),
        Some("PASS")
    );
    let shot = guest.screendump_bars(Duration::from_secs(10)).unwrap();
    assert_eq!((shot.width, shot.height), (1024, 768));
    shot.check_bars().unwrap();
    guest.quit().unwrap();
}

#[test]
fn e2e_qemu_builtin_kms_pattern() {
    kms_pattern_shows_in_screendump("e2e_qemu_builtin_kms_pattern", GpuDevice::QemuBuiltin);
}

#[test]
fn e2e_qemu_vhost_user_gpu_kms_pattern() {
    kms_pattern_shows_in_screendump(
        "e2e_qemu_vhost_user_gpu_kms_pattern",
        GpuDevice::QemuVhostUser,
    );
}
