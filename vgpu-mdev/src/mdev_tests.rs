//! The mdev model against fake trees shaped like mbochs, Intel GVT-g and broken drivers.

use super::*;
use crate::fake::FakeTree;

const MBOCHS: &str = "virtual/mbochs/mbochs";
const U1: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
const U2: &str = "83B8F4F2-509F-382F-3C1E-E6BFE0FA1002";

fn mbochs(test: &str) -> (FakeTree, Mdev) {
    let t = FakeTree::new(test);
    t.mdev_parent("mbochs", MBOCHS);
    t.mdev_type(MBOCHS, "mbochs-1", Some("small"), "vfio-pci", "64");
    t.mdev_type(MBOCHS, "mbochs-2", Some("medium"), "vfio-pci", "16");
    t.mdev_type(MBOCHS, "mbochs-3", Some("large"), "vfio-pci", "0");
    let m = Mdev::new(Sysfs::at(&t.root));
    (t, m)
}

#[test]
fn parents_types_and_instances_are_read_as_the_kernel_lays_them_out() {
    let (t, m) = mbochs("read");
    // A GVT-g-like parent: a PCI function, types without a name file.
    let gvt = "pci0000:00/0000:00:02.0";
    t.mdev_parent("0000:00:02.0", gvt);
    t.mdev_type(gvt, "i915-GVTg_V5_4", None, "vfio-pci", "2");
    t.mdev_instance(MBOCHS, "mbochs-2", U1);
    assert_eq!(m.parents().unwrap(), ["0000:00:02.0", "mbochs"]);
    let types = m.types("mbochs").unwrap();
    assert_eq!(types.len(), 3);
    assert_eq!(types[1].id, "mbochs-2");
    assert_eq!(types[1].name.as_deref(), Some("medium"));
    assert_eq!(types[1].description.as_deref(), Some("a fake type"));
    assert_eq!(types[1].device_api, "vfio-pci");
    assert_eq!(types[1].available_instances, 16);
    let gvt_types = m.types("0000:00:02.0").unwrap();
    assert_eq!(gvt_types[0].name, None);
    assert_eq!(m.all_types().unwrap().len(), 4);
    assert_eq!(
        m.instances().unwrap(),
        [Instance {
            uuid: U1.into(),
            parent: "mbochs".into(),
            mdev_type: "mbochs-2".into()
        }]
    );
}

#[test]
fn create_and_remove_write_the_kernels_files_and_refuse_plainly() {
    let (t, m) = mbochs("write");
    m.create("mbochs", "mbochs-1", U2).unwrap();
    let create = t.path("/sys/devices/virtual/mbochs/mbochs/mdev_supported_types/mbochs-1/create");
    assert_eq!(
        std::fs::read_to_string(create).unwrap(),
        format!("{}\n", U2.to_lowercase()),
        "the UUID, lower case, as the kernel wants it"
    );
    let err = |r: Result<(), MdevError>| r.unwrap_err().to_string();
    assert_eq!(
        err(m.create("mbochs", "mbochs-3", U2)),
        "type mbochs-3 of mbochs has no instances left"
    );
    assert_eq!(
        err(m.create("mbochs", "mbochs-9", U2)),
        "parent mbochs has no type mbochs-9"
    );
    assert!(err(m.create("nvidia", "nvidia-63", U2)).contains("no mediated-device parent nvidia"));
    assert!(err(m.create("mbochs", "mbochs-1", "not-a-uuid")).contains("is not a UUID"));
    t.mdev_instance(MBOCHS, "mbochs-1", U1);
    assert_eq!(
        err(m.create("mbochs", "mbochs-1", U1)),
        format!("mediated device {U1} exists already")
    );
    m.remove(U1).unwrap();
    let remove = t.path(&format!("/sys/devices/{MBOCHS}/{U1}/remove"));
    assert_eq!(std::fs::read_to_string(remove).unwrap(), "1\n");
    assert_eq!(
        err(m.remove("83b8f4f2-509f-382f-3c1e-e6bfe0fa1003")),
        "no mediated device 83b8f4f2-509f-382f-3c1e-e6bfe0fa1003"
    );
}

#[test]
fn broken_drivers_give_errors_not_panics() {
    let t = FakeTree::new("broken");
    t.mdev_parent("bad", "virtual/bad/bad");
    t.mdev_type("virtual/bad/bad", "bad-1", Some("x"), "vfio-pci", "many");
    let m = Mdev::new(Sysfs::at(&t.root));
    let e = m.types("bad").unwrap_err().to_string();
    assert!(e.contains("\"many\" is not a number"), "{e}");
    std::fs::remove_file(
        t.path("/sys/devices/virtual/bad/bad/mdev_supported_types/bad-1/device_api"),
    )
    .unwrap();
    assert!(m.types("bad").is_err(), "no device_api");
    // An instance whose type link is missing.
    t.file(&format!("/sys/devices/virtual/bad/bad/{U1}/remove"), "");
    t.link(
        &format!("/sys/bus/mdev/devices/{U1}"),
        &format!("../../../devices/virtual/bad/bad/{U1}"),
    );
    assert!(m.instances().is_err());
    // No mdev bus at all: nothing, not an error.
    let empty = FakeTree::new("empty");
    let m = Mdev::new(Sysfs::at(&empty.root));
    assert!(m.parents().unwrap().is_empty() && m.instances().unwrap().is_empty());
}
