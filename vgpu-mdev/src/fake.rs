//! Fake sysfs trees for tests (these unit tests and the end-to-end ones), laid out as the kernel lays out the real one (device
//! directories under /sys/devices, class and bus entries as relative links into them).

use std::os::unix::fs::symlink;
use std::path::PathBuf;

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
