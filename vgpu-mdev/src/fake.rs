//! Fake sysfs trees for tests (these unit tests and the end-to-end ones), laid out as the kernel lays out the real one (device
//! directories under /sys/devices, class and bus entries as relative links into them).

use std::os::unix::fs::symlink;
use std::path::PathBuf;

/// (vendor, device, class) of functions the tests lay out.
pub type PciIds = (&'static str, &'static str, &'static str);
pub const NIC: PciIds = ("0x8086", "0x10d3", "0x020000");
pub const BRIDGE: PciIds = ("0x8086", "0x2922", "0x060400");
pub const BOCHS: PciIds = ("0x1234", "0x1111", "0x030000");
pub const VIRTIO_GPU: PciIds = ("0x1af4", "0x1050", "0x038000");
pub const NVIDIA_GPU: PciIds = ("0x10de", "0x2335", "0x030200");
pub const NVIDIA_AUDIO: PciIds = ("0x10de", "0x22bc", "0x040300");

pub struct FakeTree {
    pub root: PathBuf,
}

impl FakeTree {
    pub fn new(test: &str) -> Self {
        let root = std::env::temp_dir().join(format!("vgpu-mdev-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        FakeTree { root }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    pub fn file(&self, p: &str, text: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A link at `p` to `target` (relative, as sysfs links are).
    pub fn link(&self, p: &str, target: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    /// A PCI function at `bdf` with vendor, device and class (`ids`), bound to `driver`, in
    /// IOMMU group `group`, linked as the kernel links them.
    pub fn pci_function(
        &self,
        bdf: &str,
        ids: (&str, &str, &str),
        driver: Option<&str>,
        group: &str,
    ) {
        let dev = format!("/sys/devices/pci0000:00/{bdf}");
        self.file(&format!("{dev}/vendor"), &format!("{}\n", ids.0));
        self.file(&format!("{dev}/device"), &format!("{}\n", ids.1));
        self.file(&format!("{dev}/class"), &format!("{}\n", ids.2));
        self.file(&format!("{dev}/driver_override"), "");
        self.link(
            &format!("/sys/bus/pci/devices/{bdf}"),
            &format!("../../../devices/pci0000:00/{bdf}"),
        );
        if let Some(d) = driver {
            self.file(&format!("/sys/bus/pci/drivers/{d}/unbind"), "");
            self.link(
                &format!("{dev}/driver"),
                &format!("../../../bus/pci/drivers/{d}"),
            );
        }
        self.link(
            &format!("{dev}/iommu_group"),
            &format!("../../../kernel/iommu_groups/{group}"),
        );
        self.link(
            &format!("/sys/kernel/iommu_groups/{group}/devices/{bdf}"),
            &format!("../../../../devices/pci0000:00/{bdf}"),
        );
    }

    /// An NVIDIA GPU at 03:00.0 and its audio function at 03:00.1, both in `group`.
    pub fn nvidia_gpu(&self, gpu_driver: Option<&str>, audio_driver: Option<&str>, group: &str) {
        self.pci_function("0000:03:00.0", NVIDIA_GPU, gpu_driver, group);
        self.pci_function("0000:03:00.1", NVIDIA_AUDIO, audio_driver, group);
    }

    /// A parent device at `/sys/devices/<dev>` registered on the mdev bus as `name`.
    pub fn mdev_parent(&self, name: &str, dev: &str) {
        std::fs::create_dir_all(self.path(&format!("/sys/devices/{dev}"))).unwrap();
        let class = format!("/sys/class/mdev_bus/{name}");
        self.link(&class, &format!("../../devices/{dev}"));
    }

    pub fn mdev_type(&self, dev: &str, id: &str, name: Option<&str>, api: &str, available: &str) {
        let t = format!("/sys/devices/{dev}/mdev_supported_types/{id}");
        if let Some(n) = name {
            self.file(&format!("{t}/name"), &format!("{n}\n"));
        }
        self.file(&format!("{t}/description"), "a fake type\n");
        self.file(&format!("{t}/device_api"), &format!("{api}\n"));
        self.file(
            &format!("{t}/available_instances"),
            &format!("{available}\n"),
        );
        self.file(&format!("{t}/create"), "");
        std::fs::create_dir_all(self.path(&format!("{t}/devices"))).unwrap();
    }

    /// A live instance of type `id` on the parent at `/sys/devices/<dev>`.
    pub fn mdev_instance(&self, dev: &str, id: &str, uuid: &str) {
        let d = format!("/sys/devices/{dev}/{uuid}");
        self.file(&format!("{d}/remove"), "");
        self.link(
            &format!("{d}/mdev_type"),
            &format!("../mdev_supported_types/{id}"),
        );
        let bus = format!("/sys/bus/mdev/devices/{uuid}");
        self.link(&bus, &format!("../../../devices/{dev}/{uuid}"));
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
