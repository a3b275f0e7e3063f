//! Vulkan in a guest, nested: `scripts/nested.sh --suite venus` runs L2 on our VMM with
//! `--gpu virtio,backend=vulkan` (lavapipe in L1). Here the host checks what the guest reported:
//! its kernel took the device's 3D features and capset VENUS, its Vulkan loader found a
//! "Virtio-GPU Venus" device, every vk-conformance check passed inside the guest, each hostile
//! venus stream was refused (and only ended its own context) with the guest's fences still
//! signalled, the display the guest drew before all that is still on screen, the same guest
//! ran checks over `--gpu vhost-user` with our backend in its own process, and `vgpu
//! conformance --target guest` ran the same checks in a VM of its own.

use std::process::Command;

use vgpu_tests::nested::{read_png, results};
use vgpu_tests::repo_root;

/// Console lines of the inner guest that start with `prefix` (after the L1 stamp).
fn guest_lines<'a>(log: &'a str, prefix: &str) -> Vec<&'a str> {
    log.lines()
        .filter_map(|l| l.find(prefix).map(|i| &l[i + prefix.len()..]))
        .map(str::trim)
        .collect()
}

#[test]
fn a_guest_runs_vulkan_through_venus_on_our_virtio_gpu() {
    let Some((out, log)) = results("nested_venus", "venus", "target/nested-venus") else {
        return;
    };
    assert!(
        log.contains("VGPU-RESULT nested-kvm PASS"),
        "no /dev/kvm in L1:\n{log}"
    );

    let dmesg = guest_lines(&log, "VGPU-DMESG ").join("\n");
    for feature in ["+virgl", "+resource_blob", "+host_visible", "+context_init"] {
        assert!(
            dmesg.contains(feature),
            "guest kernel lacks {feature}:\n{dmesg}"
        );
    }
    assert!(
        dmesg
            .lines()
            .any(|l| l.contains("cap set") && l.contains("id 4,")),
        "guest kernel saw no capset 4:\n{dmesg}"
    );

    let device = guest_lines(&log, "VGPU-VKINFO ")
        .into_iter()
        .find(|l| l.starts_with("deviceName"))
        .unwrap_or_else(|| panic!("vulkaninfo listed no device:\n{log}"));
    assert!(device.contains("= Virtio-GPU Venus ("), "{device}");

    let evil = guest_lines(&log, "VGPU-TEST venus-evil-");
    assert_eq!(evil.len(), 7, "every hostile case reported:\n{evil:#?}");
    assert!(evil.iter().all(|l| l.contains(" PASS ")), "{evil:#?}");
    let refused = log.matches("venus: malformed venus stream").count();
    assert!(
        refused >= 5,
        "the renderer refused {refused} hostile streams"
    );

    // The same checks the host lists, each passed inside the guest.
    let program = std::env::var_os("VK_CONFORMANCE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/vk-conformance"));
    let listed = Command::new(&program).arg("--list").output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    let checks = guest_lines(&log, "VGPU-VENUS CHECK ");
    for name in listed.lines() {
        let line = checks
            .iter()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("check {name} did not run in the guest:\n{checks:#?}"));
        assert!(line.contains(" PASS "), "in the guest: {line}");
    }
    assert!(
        guest_lines(&log, "VGPU-VENUS DEVICE ")
            .first()
            .is_some_and(|d| d.starts_with("Virtio-GPU Venus")),
        "vk-conformance ran on venus"
    );

    // `vgpu conformance --target guest` in L1: a VM of ours ran the suite, results over its console.
    let csv = guest_lines(&log, "VGPU-CONFORMANCE ");
    for name in listed.lines() {
        let row = format!("vk-conformance.{name},Pass,");
        assert!(
            csv.iter().any(|l| l.starts_with(&row)),
            "{name} did not pass under vgpu conformance --target guest:\n{csv:#?}"
        );
    }

    // The same guest on `--gpu vhost-user` with a slice of `vgpu slices serve` as the backend:
    // venus rings and host-visible memory are blobs the backend maps into the VMM's region.
    let dmesg = guest_lines(&log, "VGPU-VU-DMESG ").join("\n");
    assert!(
        dmesg.contains("+host_visible"),
        "no host-visible region over vhost-user:\n{dmesg}"
    );
    let device = guest_lines(&log, "VGPU-VU-VENUS DEVICE ");
    assert!(
        device
            .first()
            .is_some_and(|d| d.starts_with("Virtio-GPU Venus")),
        "vk-conformance over vhost-user ran on venus: {device:?}\n{log}"
    );
    let checks = guest_lines(&log, "VGPU-VU-VENUS CHECK ");
    for name in ["compute_dispatch", "offscreen_triangle"] {
        let line = checks
            .iter()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} did not run over vhost-user:\n{checks:#?}"));
        assert!(line.contains(" PASS "), "over vhost-user: {line}");
    }

    // The guest's submissions went through the slice's scheduler gate, and its memory is back
    // in the quota now that it is gone.
    let slices = guest_lines(&log, "VGPU-SLICES ");
    let list: serde_json::Value = serde_json::from_str(slices.first().expect("slices list"))
        .unwrap_or_else(|e| panic!("{e}: {slices:?}"));
    let l2 = &list["slices"][0];
    assert_eq!(l2["name"], "l2", "{list}");
    assert!(
        l2["jobs"].as_u64() > Some(0),
        "the guest's submissions were gated: {list}"
    );
    assert_eq!(l2["memory_used"], 0, "the guest's memory came back: {list}");
    assert_eq!(l2["memory_quota"], 768u64 << 20);

    let image = read_png(&out.join("l2.png"));
    assert_eq!((image.width, image.height), (1024, 768));
    image.check_bars().unwrap();
}
