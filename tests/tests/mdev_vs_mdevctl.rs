//! `vgpu mdev` against mdevctl 1.2 itself on the same fake sysfs tree: every listing the same
//! byte for byte, and a slice defined, modified or undefined by either tool seen so by the
//! other. mdevctl reads only the real /sys and /etc/mdevctl.d, so it runs in a private mount
//! namespace where the fake tree is bind-mounted over both (needs root and util-linux's
//! `unshare`); mdevctl comes extracted from its Debian package by scripts/setup.sh, which
//! leaves no /etc/mdevctl.d to mount over, so the test makes the empty directory the package
//! would have installed.

use std::path::PathBuf;
use std::process::Command;

use vgpu_mdev::fake::FakeTree;
use vgpu_tests::{repo_root, skipped, vgpu_bin, E2eError};

const TEST: &str = "mdev_listings_and_definitions_match_mdevctl";
const LIVE: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
const DEFINED: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002";
const OTHER: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1003";

/// An mbochs-like parent with two types and one live instance, an mdpy-like parent whose type
/// has no name or description, and one definition with attributes: as the kernel and mdevctl
/// lay them out.
fn fake_tree() -> FakeTree {
    let t = FakeTree::new("mdevctl-compare");
    let mbochs = "virtual/mbochs/mbochs";
    t.mdev_parent("mbochs", mbochs);
    t.mdev_type(mbochs, "mbochs-1", Some("small"), "vfio-pci", "4");
    t.mdev_type(mbochs, "mbochs-2", Some("medium"), "vfio-pci", "2");
    t.mdev_instance(mbochs, "mbochs-1", LIVE);
    let mdpy = "virtual/mdpy/mdpy";
    t.mdev_parent("mdpy", mdpy);
    t.mdev_type(mdpy, "mdpy-vga", None, "vfio-pci", "1");
    let description = t.path(&format!(
        "/sys/devices/{mdpy}/mdev_supported_types/mdpy-vga/description"
    ));
    std::fs::remove_file(description).unwrap();
    t.file(
        &format!("/etc/mdevctl.d/mbochs/{DEFINED}"),
        r#"{"mdev_type": "mbochs-2", "start": "auto", "attrs": [{"x": "1"}]}"#,
    );
    for dir in ["callouts", "notifiers"] {
        std::fs::create_dir_all(t.path(&format!("/etc/mdevctl.d/scripts.d/{dir}"))).unwrap();
    }
    t
}

struct Tools {
    vgpu: PathBuf,
    mdevctl: PathBuf,
    root: PathBuf,
}

impl Tools {
    fn ours(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(&self.vgpu)
            .args(["mdev", "--root"])
            .arg(&self.root)
            .args(args)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    fn theirs(&self, args: &[&str]) -> (bool, String, String) {
        let script = format!(
            "mkdir -p /etc/mdevctl.d && mount --bind {root}/sys /sys \
             && mount --bind {root}/etc/mdevctl.d /etc/mdevctl.d && exec {mdevctl} \"$@\"",
            root = self.root.display(),
            mdevctl = self.mdevctl.display()
        );
        let out = Command::new("unshare")
            .args(["-m", "sh", "-c", &script, "mdevctl"])
            .args(args)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// Both tools print the same bytes for `args`.
    fn same(&self, args: &[&str]) {
        let (ok_ours, ours, err_ours) = self.ours(args);
        let (ok_theirs, theirs, err_theirs) = self.theirs(args);
        assert!(ok_ours, "vgpu mdev {args:?}: {err_ours}");
        assert!(ok_theirs, "mdevctl {args:?}: {err_theirs}");
        assert_eq!(ours, theirs, "vgpu mdev {args:?} vs mdevctl");
    }
}

/// What cannot run here, or `None`.
fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("mdevctl runs in a mount namespace, which needs root".into());
    }
    if Command::new("unshare").arg("--help").output().is_err() {
        return Some("util-linux's unshare missing".into());
    }
    None
}

#[test]
fn mdev_listings_and_definitions_match_mdevctl() {
    let vgpu = match vgpu_bin() {
        Ok(v) => v,
        Err(e) if skipped(TEST, &e) => return,
        Err(e) => panic!("{e}"),
    };
    let mdevctl = repo_root().join(".cache/mdevctl/usr/bin/mdevctl");
    let why = if !mdevctl.is_file() {
        Some(format!(
            "{} missing: run scripts/setup.sh",
            mdevctl.display()
        ))
    } else {
        missing()
    };
    if let Some(why) = why {
        assert!(skipped(TEST, &E2eError::Skip(why)));
        return;
    }
    let tree = fake_tree();
    let root = tree.root.clone();
    let tools = Tools {
        vgpu,
        mdevctl,
        root: root.clone(),
    };

    let listings: &[&[&str]] = &[
        &["types"],
        &["types", "--dumpjson"],
        &["types", "-p", "mdpy"],
        &["list"],
        &["list", "--dumpjson"],
        &["list", "--defined"],
        &["list", "--defined", "--dumpjson"],
        &["list", "-d", "-u", DEFINED],
        &["list", "-d", "-p", "mdpy", "--dumpjson"],
    ];
    for args in listings {
        tools.same(args);
    }

    // Ours defines a live slice as it is; mdevctl lists it as defined and active.
    let (ok, _, err) = tools.ours(&["define", "-u", LIVE]);
    assert!(ok, "{err}");
    let (_, theirs, _) = tools.theirs(&["list", "--defined"]);
    assert!(
        theirs.contains(&format!("{LIVE} mbochs mbochs-1 manual (active)")),
        "{theirs}"
    );
    tools.same(&["list"]);

    // Ours defines a new one with a UUID of its own; mdevctl sees it, modifies it; ours sees that.
    let (ok, printed, err) = tools.ours(&["define", "-p", "mbochs", "-t", "mbochs-2", "--auto"]);
    assert!(ok, "{err}");
    let uuid = printed.trim().to_string();
    let (_, theirs, _) = tools.theirs(&["list", "--defined"]);
    assert!(
        theirs.contains(&format!("{uuid} mbochs mbochs-2 auto")),
        "{theirs}"
    );
    let (ok, _, err) = tools.theirs(&["modify", "-u", &uuid, "--manual", "-t", "mbochs-1"]);
    assert!(ok, "{err}");
    let (_, ours, _) = tools.ours(&["list", "--defined"]);
    assert!(
        ours.contains(&format!("{uuid} mbochs mbochs-1 manual")),
        "{ours}"
    );

    // mdevctl defines one; ours lists it, undefines it; mdevctl no longer has it.
    let (ok, _, err) = tools.theirs(&["define", "-p", "mdpy", "-t", "mdpy-vga", "-u", OTHER]);
    assert!(ok, "{err}");
    tools.same(&["list", "--defined", "--dumpjson"]);
    let (ok, _, err) = tools.ours(&["undefine", "-u", OTHER]);
    assert!(ok, "{err}");
    let (_, theirs, _) = tools.theirs(&["list", "--defined"]);
    assert!(!theirs.contains(OTHER), "{theirs}");
    tools.same(&["list", "--defined"]);

    // Plain errors, non-zero exits.
    let (ok, _, err) = tools.ours(&["define", "-p", "mbochs", "-t", "mbochs-2", "-u", DEFINED]);
    assert!(!ok && err.contains("defined already"), "{err}");
    let (ok, _, err) = tools.ours(&["start", "-p", "nosuch", "-t", "x"]);
    assert!(
        !ok && err.contains("no mediated-device parent nosuch"),
        "{err}"
    );
    let (ok, _, err) = tools.ours(&["start", "-p", "mbochs", "-t", "mbochs-9"]);
    assert!(!ok && err.contains("no type mbochs-9"), "{err}");
    let (ok, _, err) = tools.ours(&["stop", "-u", OTHER]);
    assert!(!ok && err.contains("no mediated device"), "{err}");

    // Starting a definition asks the kernel for the device as mdevctl does (a fake kernel
    // makes none, so both then fail to find it).
    let create =
        root.join("sys/devices/virtual/mbochs/mbochs/mdev_supported_types/mbochs-2/create");
    let _ = tools.ours(&["start", "-u", DEFINED]);
    assert_eq!(std::fs::read_to_string(&create).unwrap().trim(), DEFINED);
    std::fs::write(&create, "").unwrap();
    let _ = tools.theirs(&["start", "-u", DEFINED]);
    assert_eq!(std::fs::read_to_string(&create).unwrap().trim(), DEFINED);
}
