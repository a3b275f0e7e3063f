//! `vgpu vfio` as users run it, on a fake sysfs tree (`--root`): the listing of display
//! functions with their IOMMU groups, binding a whole group to vfio-pci, and the plain errors
//! for what is in the way. (The nested vfio suite runs the same commands on a real emulated
//! IOMMU.)

use std::time::Duration;

use vgpu_mdev::fake::{FakeTree, NIC};
use vgpu_tests::vmm::run_vgpu;

fn vgpu(t: &FakeTree, args: &[&str]) -> (i32, String, String) {
    let root = t.root.display().to_string();
    let mut all = vec!["vfio", "--root", &root];
    all.extend_from_slice(args);
    let out = run_vgpu(&all, &[], Duration::from_secs(30)).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_bind_and_plain_errors() {
    let t = FakeTree::new("vfio-cli");
    t.file("/sys/bus/pci/drivers_probe", "");
    t.pci_function("0000:00:02.0", NIC, Some("e1000e"), "1");
    t.nvidia_gpu(Some("nouveau"), Some("snd_hda_intel"), "5");

    let (code, out, err) = vgpu(&t, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("0000:03:00.0 10de:2335 class 030200 driver nouveau"),
        "{out}"
    );
    assert!(out.contains("iommu group 5, 1 other member(s)"), "{out}");
    assert!(
        out.contains("0000:03:00.1 10de:22bc class 040300 driver snd_hda_intel"),
        "{out}"
    );
    assert!(
        !out.contains("e1000e"),
        "only display functions without --all: {out}"
    );
    let (_, all, _) = vgpu(&t, &["list", "--all", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(rows[0]["group"]["members"].as_array().unwrap().len(), 2);

    // vfio-pci not loaded: said plainly, non-zero.
    let (code, _, err) = vgpu(&t, &["bind", "0000:03:00.0"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("vfio-pci is not loaded (modprobe vfio-pci)"),
        "{err}"
    );
    t.file("/sys/bus/pci/drivers/vfio-pci/unbind", "");
    let (code, out, err) = vgpu(&t, &["bind", "0000:03:00.0"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("iommu group 5:"), "{out}");
    let read = |p: &str| std::fs::read_to_string(t.path(p)).unwrap();
    for f in ["0000:03:00.0", "0000:03:00.1"] {
        assert_eq!(
            read(&format!("/sys/devices/pci0000:00/{f}/driver_override")),
            "vfio-pci\n"
        );
    }
    let (code, _, err) = vgpu(&t, &["bind", "0000:09:00.0"]);
    assert_ne!(code, 0);
    assert!(err.contains("no PCI device 0000:09:00.0"), "{err}");
}
