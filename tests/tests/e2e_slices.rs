//! `vgpu mdev` and `vgpu sriov` on a real kernel, in QEMU (TCG) guests booted from the image of
//! guests/slices/build.sh:
//! - mdev: the guest loads Linux's mbochs sample (built out of tree against the guest kernel) and
//!   runs guests/slices/mdev-suite, which drives `vgpu mdev` and mdevctl 1.2 side by side: the
//!   same listings byte for byte, instances made until the pool is empty and one more refused
//!   plainly, the pool whole again after stopping, slices defined by one tool and started by the
//!   other, and stopping by either.
//! - SR-IOV: QEMU's igb on a root port behind an emulated IOMMU (q35, intel-iommu); sriov-suite
//!   lists it, enables two VFs (autoprobe off, bound to vfio-pci), is refused for too many VFs,
//!   for disabling while a VF's IOMMU group is held open and for a device that is not a PF, and
//!   disables them.

use std::time::Duration;

use vgpu_tests::slices::MDEV_SUITE_CHECKS;
use vgpu_tests::{repo_root, skipped, GpuDevice, Guest, GuestSpec};

/// Boots the slices image running `suite`, waits for it and checks that every `expected` check
/// (and nothing else) passed.
fn run_suite(test: &str, mut spec: GuestSpec, expected: &[&str]) {
    spec.initrd = Some(repo_root().join("guests/out/slices.cpio.gz"));
    let guest = match Guest::boot(&spec) {
        Ok(g) => g,
        Err(e) if skipped(test, &e) => {
            eprintln!(
                "{test}: the image comes from guests/slices/build.sh (scripts/test.sh runs it)"
            );
            return;
        }
        Err(e) => panic!("{test}: {e}"),
    };
    guest
        .wait_done(Duration::from_secs(150))
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    let results = guest.results();
    for (name, status, detail) in &results {
        eprintln!("{test}: {name} {status} {detail}");
    }
    for name in expected {
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

#[test]
fn e2e_mdev_on_mbochs_matches_mdevctl() {
    let spec = GuestSpec::new(GpuDevice::QemuBuiltin, &["mdev-suite"]);
    run_suite(
        "e2e_mdev_on_mbochs_matches_mdevctl",
        spec,
        MDEV_SUITE_CHECKS,
    );
}

#[test]
fn e2e_sriov_igb_vfs_on_vfio_pci() {
    let mut spec = GuestSpec::new(GpuDevice::QemuBuiltin, &["sriov-suite"]);
    spec.machine = "q35,kernel-irqchip=split".into();
    spec.qemu_args = [
        "-device",
        "intel-iommu,intremap=on",
        "-device",
        "pcie-root-port,id=rp1,chassis=1",
        "-device",
        "igb,bus=rp1",
    ]
    .map(String::from)
    .to_vec();
    spec.append = "intel_iommu=on".into();
    run_suite(
        "e2e_sriov_igb_vfs_on_vfio_pci",
        spec,
        &[
            "find-pf",
            "list",
            "enable",
            "list-json",
            "out-of-range",
            "in-use",
            "disable",
            "not-a-pf",
        ],
    );
}
