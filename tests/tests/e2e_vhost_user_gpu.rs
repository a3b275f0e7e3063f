//! A stock Linux guest's virtio_gpu driver drives our device through `vgpu vhost-user-gpu`, with
//! QEMU 10 (TCG) as the vhost-user frontend: pixels checked both through our scanout export and
//! through QEMU's screendump, the driver's feature lines, the virtgpu ioctls, a misbehaving guest,
//! a guest-side device reset, and QEMU quitting and a new QEMU connecting.

use std::time::Duration;

use vgpu_tests::{skipped, vgpu_bin, GpuDevice, Guest, GuestSpec, Image, OurBackend};

const BOOT: Duration = Duration::from_secs(60);

fn ours() -> GpuDevice {
    GpuDevice::Ours {
        backend: "software".into(),
    }
}

/// Boots a guest or returns `None` after printing why the test skipped.
fn boot(test: &str, spec: &GuestSpec) -> Option<Guest> {
    match Guest::boot(spec) {
        Ok(g) => Some(g),
        Err(e) if skipped(test, &e) => None,
        Err(e) => panic!("{test}: {e}"),
    }
}

/// Boots a guest that runs `programs` (kept running for screenshots when `hold`) and waits for
/// them to finish, or returns `None` after printing why the test skipped.
fn boot_done(test: &str, device: GpuDevice, programs: &[&str], hold: bool) -> Option<Guest> {
    let mut spec = GuestSpec::new(device, programs);
    spec.hold = hold;
    let guest = boot(test, &spec)?;
    guest
        .wait_done(BOOT)
        .unwrap_or_else(|e| panic!("{e}\nbackend log:\n{}", guest.backend_log()));
    Some(guest)
}

/// The test pattern, within 10 s each, in our scanout export and in QEMU's screendump.
fn bars_in_both_screenshots(guest: &mut Guest) -> (Image, Image) {
    let ours = guest
        .backend_screenshot_bars(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\nbackend log:\n{}", guest.backend_log()));
    let qemu = guest.screendump_bars(Duration::from_secs(10)).unwrap();
    (ours, qemu)
}

fn status(guest: &Guest, name: &str) -> String {
    guest
        .result(name)
        .map(|r| r.0)
        .unwrap_or_else(|| format!("missing; results: {:?}", guest.results()))
}

#[test]
fn e2e_ours_kms_pattern_in_both_screenshots_and_feature_lines() {
    let test = "e2e_ours_kms_pattern_in_both_screenshots_and_feature_lines";
    let Some(mut guest) = boot_done(test, ours(), &["vgpu-kms --hold"], true) else {
        return;
    };
    assert_eq!(status(&guest, "kms-modeset"), "PASS");
    assert_eq!(status(&guest, "kms-dirtyfb"), "PASS");
    // QEMU's xres/yres reach the guest through the display protocol (GET_DISPLAY_INFO).
    let detail = guest.result("kms-modeset").unwrap().1;
    assert!(detail.starts_with("1024x768"), "mode: {detail}");

    let (ours, qemu) = bars_in_both_screenshots(&mut guest);
    assert_eq!((ours.width, ours.height), (1024, 768));
    ours.check_bars().unwrap();
    assert_eq!((qemu.width, qemu.height), (1024, 768));
    qemu.check_bars().unwrap();

    let lines = guest.lines();
    let features: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("[drm] features:"))
        .collect();
    assert!(
        features.iter().any(|l| l.contains("+edid")),
        "feature lines: {features:?}"
    );
    // QEMU 10's vhost-user-gpu-pci forwards only VIRGL and EDID of the backend's features to
    // the guest (it masks blob and context init), and the software backend has no virgl.
    assert!(
        features.iter().any(|l| l.contains("-virgl")),
        "feature lines: {features:?}"
    );
    // The capset count comes from our device's config space (the software backend has one),
    // and the driver's capset queries are answered (a lost answer costs a 5 s timeout).
    assert!(lines.iter().any(|l| l.contains("number of cap sets: 1")));
    assert!(!lines
        .iter()
        .any(|l| l.contains("timed out waiting for cap set")));
    assert!(
        lines.iter().any(|l| l.contains("number of scanouts: 1")),
        "scanouts line"
    );
    guest.quit().unwrap();
}

#[test]
fn e2e_ours_virtgpu_ioctls() {
    let test = "e2e_ours_virtgpu_ioctls";
    let Some(guest) = boot_done(test, ours(), &["vgpu-ioctl"], false) else {
        return;
    };
    let results = guest.results();
    eprintln!("{test}: {results:#?}");
    // get-caps: the driver lists our VG capset (id 30) to userspace and GET_CAPS answers it.
    for name in [
        "getparam",
        "get-caps",
        "resource-create",
        "transfer-to-host",
        "wait",
    ] {
        assert_eq!(status(&guest, name), "PASS", "{name}");
    }
    let failed: Vec<_> = results.iter().filter(|r| r.1 == "FAIL").collect();
    assert!(failed.is_empty(), "failed: {failed:?}");
    // QEMU 10 masks VIRTIO_GPU_F_RESOURCE_BLOB on vhost-user-gpu-pci: the guest must see none.
    assert_eq!(status(&guest, "blob-guest"), "SKIP");
}

#[test]
fn e2e_ours_misbehaving_guest_gets_errors_and_display_keeps_working() {
    let test = "e2e_ours_misbehaving_guest_gets_errors_and_display_keeps_working";
    let programs = ["vgpu-evil", "vgpu-kms --hold"];
    let Some(mut guest) = boot_done(test, ours(), &programs, true) else {
        return;
    };
    // The guest driver logs each error response: "*ERROR* response 0x12xx (command 0x1xx)".
    let lines = guest.lines();
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("*ERROR* response 0x12"))
        .collect();
    let transfer_errors = errors
        .iter()
        .filter(|l| l.contains("(command 0x105)"))
        .count();
    let create_errors = errors
        .iter()
        .filter(|l| l.contains("(command 0x101)"))
        .count();
    assert!(
        transfer_errors >= 2,
        "oversized/overflowing transfers must be refused: {errors:#?}"
    );
    assert!(
        create_errors >= 2,
        "unknown format and 65535x65535 must be refused: {errors:#?}"
    );
    assert_eq!(status(&guest, "kms-modeset"), "PASS");
    bars_in_both_screenshots(&mut guest);
    guest.quit().unwrap();
}

#[test]
fn e2e_ours_guest_device_reset_then_display_works() {
    let test = "e2e_ours_guest_device_reset_then_display_works";
    let programs = ["vgpu-kms", "vgpu-rebind", "vgpu-kms --hold"];
    let Some(mut guest) = boot_done(test, ours(), &programs, true) else {
        return;
    };
    assert_eq!(status(&guest, "rebind"), "PASS");
    let modesets = guest
        .results()
        .iter()
        .filter(|r| r.0 == "kms-modeset" && r.1 == "PASS")
        .count();
    assert_eq!(modesets, 2, "{:?}", guest.results());
    // Resource ids restart at 1 after the reset: had the device kept the old driver's
    // resources, the second run's creates would fail with "resource id in use".
    assert!(
        !guest.lines().iter().any(|l| l.contains("*ERROR* response")),
        "errors after reset"
    );
    bars_in_both_screenshots(&mut guest);
    assert!(
        guest
            .backend_log()
            .contains("resetting the virtio-gpu device"),
        "{}",
        guest.backend_log()
    );
    guest.quit().unwrap();
}

#[test]
fn e2e_ours_serves_next_qemu_after_quit_without_leaks() {
    let test = "e2e_ours_serves_next_qemu_after_quit_without_leaks";
    let mut backend = match OurBackend::start("software", &["--max-connections", "2"]) {
        Ok(b) => b,
        Err(e) if skipped(test, &e) => return,
        Err(e) => panic!("{test}: {e}"),
    };
    // Descriptors and threads while waiting for the first connection...
    std::thread::sleep(Duration::from_millis(300));
    let mut counts = vec![(backend.open_fds(), backend.threads())];
    for round in 0..2 {
        let mut spec = GuestSpec::new(
            GpuDevice::External {
                socket: backend.socket.clone(),
            },
            &["vgpu-kms --hold"],
        );
        spec.hold = true;
        let mut guest = Guest::boot(&spec).unwrap();
        guest
            .wait_done(BOOT)
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", backend.log()));
        assert_eq!(status(&guest, "kms-modeset"), "PASS", "round {round}");
        guest
            .screendump_bars(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", backend.log()));
        guest.quit().unwrap();
        if round == 0 {
            // ...and again while waiting for the second: nothing of a finished connection
            // (memory table, eventfds, display socket, worker threads) stays behind.
            std::thread::sleep(Duration::from_millis(500));
            counts.push((backend.open_fds(), backend.threads()));
        }
    }
    assert_eq!(
        counts[0],
        counts[1],
        "fds/threads before and after a connection: {counts:?}\n{}",
        backend.log()
    );
    let status = backend
        .wait_exit(Duration::from_secs(10))
        .expect("backend exits after 2 connections");
    assert!(status.success(), "{status:?}\n{}", backend.log());
}

#[test]
fn e2e_print_capabilities_matches_qemu_interop_schema() {
    let bin = match vgpu_bin() {
        Ok(b) => b,
        Err(e) if skipped("e2e_print_capabilities_matches_qemu_interop_schema", &e) => return,
        Err(e) => panic!("{e}"),
    };
    let out = std::process::Command::new(bin)
        .args(["vhost-user-gpu", "--print-capabilities"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["type"], "gpu");
    let features = json["features"].as_array().expect("features array");
    // interop/vhost-user.json defines only these for GPU backends.
    assert!(
        features.iter().all(|f| f == "render-node" || f == "virgl"),
        "{features:?}"
    );
}

#[test]
fn e2e_ours_inherited_fd_like_libvirt() {
    let test = "e2e_ours_inherited_fd_like_libvirt";
    let device = GpuDevice::OursInheritedFd {
        backend: "software".into(),
    };
    let Some(mut guest) = boot_done(test, device, &["vgpu-kms --hold"], true) else {
        return;
    };
    assert_eq!(status(&guest, "kms-modeset"), "PASS");
    bars_in_both_screenshots(&mut guest);
    // With --fd the backend serves that one connection and exits cleanly when QEMU quits.
    let status = guest.quit().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn e2e_ours_vulkan_backend_kms_pattern() {
    let test = "e2e_ours_vulkan_backend_kms_pattern";
    let vulkan = std::process::Command::new("vulkaninfo")
        .arg("--summary")
        .output();
    if !vulkan.is_ok_and(|o| o.status.success()) {
        let reason = vgpu_tests::E2eError::Skip("no working Vulkan (vulkaninfo failed)".into());
        if skipped(test, &reason) {
            return;
        }
    }
    let device = GpuDevice::Ours {
        backend: "vulkan".into(),
    };
    let Some(mut guest) = boot_done(test, device, &["vgpu-kms --hold"], true) else {
        return;
    };
    assert_eq!(status(&guest, "kms-modeset"), "PASS");
    bars_in_both_screenshots(&mut guest);
    assert!(
        guest.backend_log().contains("backend: vulkan"),
        "{}",
        guest.backend_log()
    );
    guest.quit().unwrap();
}
