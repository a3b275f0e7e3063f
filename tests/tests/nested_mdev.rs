//! Mediated devices, nested: scripts/nested.sh --suite mdev boots L1 (QEMU/TCG with real KVM
//! inside), which loads Linux's mbochs sample (a mediated bochs display), makes two instances with
//! `vgpu mdev start` (after `vgpu mdev` and mdevctl 1.2 were checked against each other on that
//! kernel) and runs two L2 VMs at once, each on one instance through `vgpu run --gpu
//! vfio,sysfsdev=/sys/bus/mdev/devices/UUID`. Checked here: each VMM's screenshot of its mdev's
//! display (the plane the vendor driver describes; mbochs' read from its video memory) shows the picture
//! its own L2 drew with bochs-drm, bars on one and inverted bars on the other; both VMs ended
//! cleanly and the instances could be stopped afterwards; the side-by-side runs (the same L2 on
//! an instance and on L1's whole bochs-display) completed. Runs only with VGPU_NESTED=1.

use vgpu_tests::nested::{read_png, results};
use vgpu_tests::slices::MDEV_SUITE_CHECKS;

#[test]
fn two_vms_on_two_mbochs_instances_each_show_their_own_picture() {
    let Some((out, log)) = results("nested_mdev", "mdev", "target/nested-mdev") else {
        return;
    };
    assert!(
        log.contains("VGPU-RESULT mdev-suite DONE"),
        "the suite did not finish"
    );
    assert!(
        log.contains("VGPU-MDEV-L1 loaded mbochs"),
        "mbochs did not load"
    );
    // The management checks on L1's kernel, `vgpu mdev` against mdevctl 1.2.
    for check in MDEV_SUITE_CHECKS {
        assert!(
            log.contains(&format!("VGPU-MDEV-L1 manage VGPU-TEST {check} PASS")),
            "{check}"
        );
    }
    for (label, picture) in [("mdev1", "bars"), ("mdev2", "inverted")] {
        assert!(
            log.contains(&format!("{label} VGPU-MDEV shown {picture}")),
            "{label}: L2 did not draw"
        );
        assert!(
            log.contains(&format!("VGPU-MDEV-L1 exit {label} rc 0")),
            "{label}: vgpu run failed"
        );
        assert!(
            log.lines().any(|l| l.contains(&format!("{label}-log"))
                && l.contains("the device's display is scanout 0")
                && l.contains("dmabuf=true")),
            "{label}: the mdev's dma-buf display was not picked up"
        );
        let shot = read_png(&out.join(format!("l2-gpu-{label}.png")));
        assert_eq!((shot.width, shot.height), (1024, 768), "{label}");
        let checked = if picture == "bars" {
            shot.check_bars()
        } else {
            shot.check_inverted_bars()
        };
        checked.unwrap_or_else(|e| panic!("{label} ({picture}): {e}"));
    }
    // The side-by-side runs: page flips and framebuffer writes on a slice and on the whole
    // device, both rounds of each.
    for label in ["mdev-bench", "whole-bench"] {
        for check in ["kms-flips PASS flips=300", "bar-fill PASS"] {
            assert_eq!(
                log.matches(&format!("{label} VGPU-TEST {check}")).count(),
                2,
                "{label}: {check}"
            );
        }
    }
    // Both instances stopped once the VMs let go.
    assert!(log.contains("VGPU-MDEV-L1 left 0"), "instances left behind");
}
