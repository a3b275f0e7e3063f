//! libvirt, unchanged, starts our backend: `vgpu install` registers it the way a user would
//! (binary, alias, QEMU interop descriptor), a private session-mode libvirtd boots our guest
//! image in a TCG domain with `<driver name='vhostuser'/>` video, and we check that the backend
//! libvirt launched is ours (by its executable and its `--fd=N`), that `virsh screenshot` shows
//! the guest's pattern, that `virsh destroy` leaves no backend behind, and that a second start
//! works. Then `vgpu install --uninstall` removes what the install wrote.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use vgpu_tests::{guest_image, qemu10, skipped, vgpu_bin, E2eError, Image};
use vmm::libvirt::{follow_lines, DomainSpec, LibvirtError, LibvirtSession};

const TEST: &str = "e2e_libvirt_starts_our_installed_backend";
const DOMAIN: &str = "vgpu-e2e";

/// Waits for the guest's `VGPU-TEST name` line and returns it.
fn wait_result(lines: &Receiver<String>, name: &str, session: &LibvirtSession) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    let want = format!("VGPU-TEST {name} ");
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(&want) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "{TEST}: no {want} in 120 s; serial:\n{}\nlibvirtd log:\n{}",
                seen.join("\n"),
                session.log()
            ),
        }
    }
}

/// Whether `pid` is gone (a zombie nobody reaped yet counts as gone).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Live processes whose executable is `exe`.
fn running(exe: &Path) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe))
        .filter(|&pid| !gone(pid))
        .collect()
}

fn vgpu_install(vgpu: &Path, prefix: &Path, vhost_user_dir: &Path, extra: &[&str]) {
    let out = Command::new(vgpu)
        .arg("install")
        .arg("--prefix")
        .arg(prefix)
        .arg("--vhost-user-dir")
        .arg(vhost_user_dir)
        .args(extra)
        .output()
        .expect("running vgpu install");
    assert!(
        out.status.success(),
        "vgpu install {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The screenshot shows the pattern within 10 s (the guest draws it once, then holds).
fn screenshot_bars(session: &LibvirtSession) -> Image {
    let start = Instant::now();
    loop {
        let png = session
            .screenshot_png(DOMAIN)
            .unwrap_or_else(|e| panic!("{TEST}: {e}"));
        let image = Image::from_png(&png).unwrap();
        match image.check_bars() {
            Ok(()) => return image,
            Err(e) if start.elapsed() > Duration::from_secs(10) => {
                panic!("{TEST}: virsh screenshot: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Starts the domain, checks the backend, the pattern and the teardown; returns the backend pid.
fn boot_check_destroy(session: &mut LibvirtSession, spec: &DomainSpec, binary: &Path) -> u32 {
    let lines = follow_lines(spec.serial.clone());
    let start = Instant::now();
    session
        .create(spec)
        .unwrap_or_else(|e| panic!("{TEST}: {e}\nlibvirtd log:\n{}", session.log()));
    let backend = session
        .vhost_user_gpu_pid(DOMAIN)
        .expect("libvirt's pidfile for the vhost-user-gpu backend");
    let qemu = session
        .qemu_pid(DOMAIN)
        .expect("libvirt's pidfile for QEMU");
    // Ours: the installed vgpu, started through the descriptor's alias with libvirt's --fd.
    let exe = std::fs::read_link(format!("/proc/{backend}/exe")).unwrap();
    assert_eq!(exe, binary, "the backend libvirt started");
    let argv: Vec<String> = std::fs::read(format!("/proc/{backend}/cmdline"))
        .unwrap()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(argv[0].ends_with("libexec/vgpu-vhost-user-gpu"), "{argv:?}");
    assert!(argv.iter().any(|a| a.starts_with("--fd=")), "{argv:?}");

    let modeset = wait_result(&lines, "kms-modeset", session);
    assert!(modeset.contains(" PASS 1024x768"), "{modeset}");
    let dirtyfb = wait_result(&lines, "kms-dirtyfb", session);
    assert!(dirtyfb.contains(" PASS "), "{dirtyfb}");
    let booted = start.elapsed();
    // The renderer the default picked: the Vulkan one maps a Vulkan driver.
    let maps = std::fs::read_to_string(format!("/proc/{backend}/maps")).unwrap_or_default();
    let renderer = if maps.contains("libvulkan") {
        "vulkan"
    } else {
        "software"
    };
    let image = screenshot_bars(session);
    assert_eq!((image.width, image.height), (1024, 768));
    eprintln!(
        "{TEST}: backend pid {backend} ({}, {renderer} renderer) argv {argv:?}; guest drew the pattern {:.1} s after \
         virsh create; virsh screenshot {}x{} shows it",
        exe.display(),
        booted.as_secs_f64(),
        image.width,
        image.height
    );

    session.destroy(DOMAIN).unwrap();
    let start = Instant::now();
    while !(gone(backend) && gone(qemu)) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{TEST}: after virsh destroy: backend gone {}, QEMU gone {}",
            gone(backend),
            gone(qemu)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(running(binary), Vec::<u32>::new(), "backends left running");
    eprintln!(
        "{TEST}: virsh destroy: QEMU and backend gone after {} ms",
        start.elapsed().as_millis()
    );
    backend
}

#[test]
fn e2e_libvirt_starts_our_installed_backend() {
    let prerequisites = || -> Result<(PathBuf, (PathBuf, PathBuf)), E2eError> {
        qemu10()?;
        Ok((vgpu_bin()?, guest_image()?))
    };
    let (vgpu, (kernel, initrd)) = match prerequisites() {
        Ok(p) => p,
        Err(e) if skipped(TEST, &e) => return,
        Err(e) => panic!("{TEST}: {e}"),
    };
    let dir = std::env::temp_dir().join(format!("vgpu-libvirt-{}", std::process::id()));
    let mut session = match LibvirtSession::start(&dir) {
        Ok(s) => s,
        Err(LibvirtError::Missing(bin)) => {
            let why = E2eError::Skip(format!("{bin} missing (scripts/setup.sh installs libvirt)"));
            assert!(skipped(TEST, &why));
            return;
        }
        Err(e) => panic!("{TEST}: {e}"),
    };

    // Installed as a user installs it, into this session's prefix and descriptor directory.
    let prefix = dir.join("prefix");
    vgpu_install(&vgpu, &prefix, &session.vhost_user_dir(), &[]);
    session.give_to_user(&dir).unwrap();
    let binary = prefix.join("bin/vgpu");
    let spec = |round: u32| DomainSpec {
        name: DOMAIN.into(),
        kernel: session.stage(&kernel).unwrap(),
        initrd: session.stage(&initrd).unwrap(),
        cmdline: "console=ttyS0 quiet panic=-1 vgpu_run=vgpu-kms+--hold vgpu_hold".into(),
        memory_mib: 512,
        serial: dir.join(format!("serial-{round}.log")),
        resolution: (1024, 768),
    };
    let (first, second) = (spec(1), spec(2));
    let pid1 = boot_check_destroy(&mut session, &first, &binary);
    let pid2 = boot_check_destroy(&mut session, &second, &binary);
    assert_ne!(pid1, pid2, "the second start has its own backend");

    vgpu_install(&vgpu, &prefix, &session.vhost_user_dir(), &["--uninstall"]);
    for path in [
        binary,
        prefix.join("libexec/vgpu-vhost-user-gpu"),
        session.vhost_user_dir().join("10-vgpu-gpu.json"),
    ] {
        assert!(!path.exists(), "{} left after --uninstall", path.display());
    }
}
