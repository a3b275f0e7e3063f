//! SR-IOV, nested: scripts/nested.sh --suite sriov boots L1 (QEMU/TCG q35 with an emulated
//! IOMMU and real KVM inside) with an igb, an SR-IOV NIC (no emulated display device has
//! SR-IOV; the VF mechanics are a GPU VF's). `vgpu sriov enable` makes two VFs on vfio-pci and
//! `vgpu run --gpu vfio,host=<VF>` gives one to L2. Checked here: igbvf binds to the VF in L2 and
//! its MSI-X vectors fire; disabling the VFs while L2 holds one is refused plainly, and works
//! once the VM has ended. Runs only with VGPU_NESTED=1.

use vgpu_tests::nested::{line, results};

#[test]
fn a_vf_in_l2_gets_its_driver_and_interrupts_and_cannot_be_pulled_away() {
    let Some((_out, log)) = results("nested_sriov", "sriov", "target/nested-sriov") else {
        return;
    };
    assert!(
        log.contains("VGPU-RESULT sriov-suite DONE"),
        "the suite did not finish"
    );
    assert!(
        line(&log, "VGPU-SRIOV-L1 vf ").ends_with("driver vfio-pci"),
        "{}",
        line(&log, "VGPU-SRIOV-L1 vf ")
    );
    assert_eq!(line(&log, "VGPU-SRIOV driver"), "igbvf");
    let msix: u64 = line(&log, "VGPU-SRIOV msix-count").parse().unwrap();
    assert!(msix > 0, "no MSI-X interrupt of the VF reached L2");
    let refused = line(&log, "VGPU-SRIOV-L1 disable-while-assigned");
    assert!(
        refused.starts_with("refused") && refused.contains("is assigned"),
        "{refused}"
    );
    assert_eq!(line(&log, "VGPU-SRIOV-L1 numvfs after"), "0");
}
