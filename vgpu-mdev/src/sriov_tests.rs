//! The SR-IOV model against fake trees: an NVIDIA-like PF with VFs (one bound to vfio-pci and
//! held open by a VM), an igb-like PF without VFs, and a device that is not a PF.

use super::*;
use crate::fake::FakeTree;

const PF: &str = "0000:41:00.0";

fn tree(test: &str) -> (FakeTree, Sriov) {
    let t = FakeTree::new(test);
    let pf = |attr: &str, v: &str| t.file(&format!("/sys/devices/pci0000:40/{PF}/{attr}"), v);
    pf("vendor", "0x10de\n");
    pf("device", "0x2335\n");
    pf("sriov_totalvfs", "16\n");
    pf("sriov_numvfs", "2\n");
    pf("sriov_drivers_autoprobe", "1\n");
    t.link(
        &format!("/sys/devices/pci0000:40/{PF}/driver"),
        "../../../bus/pci/drivers/nvidia",
    );
    t.link(
        &format!("/sys/bus/pci/devices/{PF}"),
        &format!("../../../devices/pci0000:40/{PF}"),
    );
    for (i, vf) in ["0000:41:00.4", "0000:41:00.5"].iter().enumerate() {
        let dir = format!("/sys/devices/pci0000:40/{vf}");
        t.file(&format!("{dir}/driver_override"), "(null)\n");
        t.link(
            &format!("{dir}/iommu_group"),
            &format!("../../../kernel/iommu_groups/{}", 30 + i),
        );
        t.link(
            &format!("/sys/devices/pci0000:40/{PF}/virtfn{i}"),
            &format!("../{vf}"),
        );
        t.link(
            &format!("/sys/bus/pci/devices/{vf}"),
            &format!("../../../devices/pci0000:40/{vf}"),
        );
    }
    t.link(
        "/sys/devices/pci0000:40/0000:41:00.4/driver",
        "../../../bus/pci/drivers/vfio-pci",
    );
    t.file("/sys/bus/pci/drivers_probe", "");
    // Not a PF: no sriov_totalvfs.
    t.file("/sys/devices/pci0000:00/0000:00:1f.0/vendor", "0x8086\n");
    t.link(
        "/sys/bus/pci/devices/0000:00:1f.0",
        "../../../devices/pci0000:00/0000:00:1f.0",
    );
    let s = Sriov::new(Sysfs::at(&t.root));
    (t, s)
}

#[test]
fn physical_functions_and_their_vfs_are_read() {
    let (_t, s) = tree("sriov-read");
    let pfs = s.physical_functions().unwrap();
    assert_eq!(pfs.len(), 1, "only the PF");
    let pf = &pfs[0];
    assert_eq!(
        (pf.vendor.as_str(), pf.device.as_str()),
        ("0x10de", "0x2335")
    );
    assert_eq!(pf.driver.as_deref(), Some("nvidia"));
    assert_eq!((pf.total_vfs, pf.num_vfs), (16, 2));
    assert_eq!(pf.vfs[0].bdf, "0000:41:00.4");
    assert_eq!(pf.vfs[0].driver.as_deref(), Some("vfio-pci"));
    assert_eq!(pf.vfs[1].iommu_group.as_deref(), Some("31"));
    assert_eq!(pf.vfs[1].driver, None);
    let e = s.physical_function("0000:00:1f.0").unwrap_err();
    assert_eq!(
        e.to_string(),
        "0000:00:1f.0 is not an SR-IOV physical function"
    );
    assert!(s.physical_function("0000:99:00.0").is_err());
}

#[test]
fn enable_disable_and_binding_write_what_the_kernel_wants_and_refuse_plainly() {
    let (t, s) = tree("sriov-write");
    let read = |p: &str| std::fs::read_to_string(t.path(p)).unwrap();
    let e = s.enable(PF, 17).unwrap_err();
    assert_eq!(
        e.to_string(),
        "0000:41:00.0: 17 virtual functions asked, it has 16"
    );
    assert!(s.enable(PF, 0).is_err());
    s.enable(PF, 4).unwrap();
    assert_eq!(
        read(&format!(
            "/sys/devices/pci0000:40/{PF}/sriov_drivers_autoprobe"
        )),
        "0\n"
    );
    assert_eq!(
        read(&format!("/sys/devices/pci0000:40/{PF}/sriov_numvfs")),
        "4\n"
    );
    s.bind_vfs_to_vfio(PF).unwrap();
    assert_eq!(
        read("/sys/devices/pci0000:40/0000:41:00.5/driver_override"),
        "vfio-pci\n"
    );
    assert_eq!(
        read("/sys/bus/pci/drivers_probe"),
        "0000:41:00.5\n",
        "the unbound VF probed"
    );
    assert_eq!(
        read("/sys/devices/pci0000:40/0000:41:00.4/driver_override"),
        "(null)\n",
        "already on vfio-pci: left alone"
    );
    // A VM holds VF 0's group open: disabling is refused.
    t.link("/proc/4242/fd/17", "/dev/vfio/30");
    let e = s.disable(PF).unwrap_err();
    assert_eq!(
        e.to_string(),
        "0000:41:00.0: virtual function 0000:41:00.4 is assigned (IOMMU group 30 is open)"
    );
    std::fs::remove_file(t.path("/proc/4242/fd/17")).unwrap();
    s.disable(PF).unwrap();
    assert_eq!(
        read(&format!("/sys/devices/pci0000:40/{PF}/sriov_numvfs")),
        "0\n"
    );
}
