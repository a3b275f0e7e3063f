use super::*;
use crate::fake::{FakeTree, BOCHS, BRIDGE, NIC, VIRTIO_GPU};

fn host(t: &FakeTree) -> VfioHost {
    t.file("/sys/bus/pci/drivers_probe", "");
    VfioHost::new(Sysfs::at(&t.root))
}

#[test]
fn lists_display_functions_first_with_groups_and_drivers() {
    let t = FakeTree::new("vfio-list");
    t.pci_function("0000:00:02.0", NIC, Some("e1000e"), "1");
    t.pci_function("0000:01:00.0", BOCHS, Some("bochs-drm"), "2");
    t.pci_function("0000:02:00.0", VIRTIO_GPU, Some("vfio-pci"), "3");
    let h = host(&t);
    let all = h.functions().unwrap();
    let bdfs: Vec<_> = all.iter().map(|f| f.bdf.as_str()).collect();
    assert_eq!(bdfs, ["0000:01:00.0", "0000:02:00.0", "0000:00:02.0"]);
    assert_eq!(all[0].vendor, 0x1234);
    assert_eq!(all[0].driver.as_deref(), Some("bochs-drm"));
    assert_eq!(all[1].iommu_group.as_deref(), Some("3"));
    assert!(all[1].is_display() && !all[2].is_display());
}

#[test]
fn viability_names_the_devices_in_the_way() {
    let t = FakeTree::new("vfio-viable");
    // A GPU and its audio function share group 5; the bridge may keep pcieport.
    t.pci_function("0000:00:1c.0", BRIDGE, Some("pcieport"), "5");
    t.nvidia_gpu(Some("vfio-pci"), Some("snd_hda_intel"), "5");
    let h = host(&t);
    let err = h.check_viable("0000:03:00.0").unwrap_err().to_string();
    assert!(err.contains("0000:03:00.1 (snd_hda_intel)"), "{err}");
    assert!(!err.contains("pcieport"), "{err}");
    assert!(matches!(
        h.check_viable("0000:09:00.0"),
        Err(VfioHostError::NoSuchDevice(_))
    ));
}

#[test]
fn no_group_means_no_iommu() {
    let t = FakeTree::new("vfio-noiommu");
    let dev = "/sys/devices/pci0000:00/0000:00:02.0";
    t.file(&format!("{dev}/vendor"), "0x1234\n");
    t.file(&format!("{dev}/device"), "0x1111\n");
    t.file(&format!("{dev}/class"), "0x030000\n");
    t.link(
        "/sys/bus/pci/devices/0000:00:02.0",
        "../../../devices/pci0000:00/0000:00:02.0",
    );
    let err = host(&t).check_viable("0000:00:02.0").unwrap_err();
    assert!(matches!(err, VfioHostError::NoIommu(_)), "{err}");
    assert!(err.to_string().contains("intel_iommu=on"));
}

#[test]
fn bind_overrides_unbinds_and_reprobes_every_member_but_bridges() {
    let t = FakeTree::new("vfio-bind");
    t.pci_function("0000:00:1c.0", BRIDGE, Some("pcieport"), "5");
    t.nvidia_gpu(Some("nouveau"), None, "5");
    let h = host(&t);
    assert!(matches!(
        h.bind("0000:03:00.0"),
        Err(VfioHostError::NoVfioDriver)
    ));
    t.file("/sys/bus/pci/drivers/vfio-pci/unbind", "");
    h.bind("0000:03:00.0").unwrap();
    let read = |p: &str| std::fs::read_to_string(t.path(p)).unwrap();
    let dev = "/sys/devices/pci0000:00";
    assert_eq!(
        read(&format!("{dev}/0000:03:00.0/driver_override")),
        "vfio-pci\n"
    );
    assert_eq!(
        read(&format!("{dev}/0000:03:00.1/driver_override")),
        "vfio-pci\n"
    );
    assert_eq!(
        read(&format!("{dev}/0000:00:1c.0/driver_override")),
        "",
        "bridge untouched"
    );
    assert_eq!(
        read("/sys/bus/pci/drivers/nouveau/unbind"),
        "0000:03:00.0\n"
    );
    // The fake kernel does not rebind; the last probe written is the group's last member.
    assert_eq!(read("/sys/bus/pci/drivers_probe"), "0000:03:00.1\n");
}

#[test]
fn unbind_clears_the_override_of_vfio_members() {
    let t = FakeTree::new("vfio-unbind");
    t.pci_function("0000:01:00.0", BOCHS, Some("vfio-pci"), "2");
    let h = host(&t);
    h.unbind("0000:01:00.0").unwrap();
    let read = |p: &str| std::fs::read_to_string(t.path(p)).unwrap();
    assert_eq!(
        read("/sys/devices/pci0000:00/0000:01:00.0/driver_override"),
        "\n"
    );
    assert_eq!(
        read("/sys/bus/pci/drivers/vfio-pci/unbind"),
        "0000:01:00.0\n"
    );
    assert_eq!(read("/sys/bus/pci/drivers_probe"), "0000:01:00.0\n");
}

#[test]
fn a_group_node_this_user_cannot_open_is_no_permission() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = FakeTree::new("vfio-perm");
    t.pci_function("0000:01:00.0", BOCHS, Some("vfio-pci"), "7");
    t.file("/dev/vfio/7", "");
    let node = t.path("/dev/vfio/7");
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o600)).unwrap();
    let meta = std::fs::metadata(&node).unwrap();
    let owner = Identity {
        uid: meta.uid(),
        gids: vec![],
    };
    let other = Identity {
        uid: meta.uid() + 1000,
        gids: vec![meta.gid()],
    };
    assert!(owner.may_open(&meta));
    assert!(!other.may_open(&meta), "0600 keeps the group out");
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o660)).unwrap();
    assert!(
        other.may_open(&std::fs::metadata(&node).unwrap()),
        "0660 lets the group in"
    );
    let root = Identity {
        uid: 0,
        gids: vec![],
    };
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o000)).unwrap();
    assert!(root.may_open(&std::fs::metadata(&node).unwrap()));
    // This process (whoever runs the tests) gets the check's verdict, not a panic.
    let h = host(&t);
    match h.check_viable("0000:01:00.0") {
        Ok(group) => assert_eq!(group.id, "7"),
        Err(err) => assert!(matches!(err, VfioHostError::NoPermission { .. }), "{err}"),
    }
}
