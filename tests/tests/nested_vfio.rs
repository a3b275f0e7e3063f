//! VFIO passthrough, nested: scripts/nested.sh --suite vfio boots L1 (QEMU/TCG q35 with an
//! emulated IOMMU) with a bochs-display and a virtio-gpu-pci of its own; `vgpu vfio bind` puts
//! both on vfio-pci and `vgpu run --gpu vfio,host=...` gives both to L2, where bochs-drm and
//! virtio_gpu draw. Checked here: each device's own screendump (taken by the host through QMP)
//! shows the picture L2 drew on it, first, after both drivers were unbound and rebound, and after
//! a hostile program wrote garbage into both functions' config space and BARs; the ROM L2 reads
//! is SeaBIOS's; the virtio-gpu's MSI-X vectors fired in L2; a second VM on the same functions
//! works; L1 still sees both functions afterwards; the bochs function (beside an audio function,
//! without a reset of its own) is hot reset; writes on its mapped framebuffer BAR cost no VM
//! exits. Runs only with VGPU_NESTED=1.

use vgpu_tests::nested::{line, read_png, results};

/// The bochs function's address in L1.
fn bochs_l1(log: &str) -> String {
    line(log, "VGPU-VFIO-L1 functions bochs=")
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn both_functions_draw_through_passthrough_survive_a_hostile_guest_and_a_second_vm() {
    let Some((out, log)) = results("nested_vfio", "vfio", "target/nested-vfio") else {
        return;
    };
    assert!(
        log.contains("VGPU-RESULT vfio-suite DONE"),
        "the suite did not finish"
    );
    // Before binding, the VMM refuses plainly.
    assert!(
        line(&log, "VGPU-VFIO-L1 unbound-run").contains("not vfio-pci"),
        "{}",
        line(&log, "VGPU-VFIO-L1 unbound-run")
    );
    for shot in ["r1-first", "r1-rebound", "r1-after-evil", "r2-first"] {
        let bochs = read_png(&out.join(format!("{shot}-bochs.png")));
        assert_eq!((bochs.width, bochs.height), (1024, 768), "{shot} bochs");
        bochs
            .check_bars()
            .unwrap_or_else(|e| panic!("{shot}, bochs-display: {e}"));
        let virtio = read_png(&out.join(format!("{shot}-virtio.png")));
        assert_eq!(
            (virtio.width, virtio.height),
            (1024, 768),
            "{shot} virtio-gpu"
        );
        virtio
            .check_inverted_bars()
            .unwrap_or_else(|e| panic!("{shot}, virtio-gpu-pci: {e}"));
    }
    // The ROM through the ROM BAR: SeaBIOS's vgabios-bochs-display.bin, QEMU's romfile.
    let rom = std::fs::read("/usr/share/seabios/vgabios-bochs-display.bin").unwrap();
    let digest = std::process::Command::new("sha256sum")
        .arg("/usr/share/seabios/vgabios-bochs-display.bin")
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&digest.stdout);
    let fields: Vec<&str> = line(&log, "VGPU-VFIO rom ").split_whitespace().collect();
    assert_eq!(
        fields[0],
        want.split_whitespace().next().unwrap(),
        "ROM digest"
    );
    assert_eq!(fields[1], rom.len().to_string(), "ROM image length");
    // 300 full-screen updates through the passed virtio-gpu, each flushed.
    assert!(
        log.contains("vfio VGPU-TEST kms-frames PASS frames=300"),
        "the frames run failed"
    );
    let msix: u64 = line(&log, "VGPU-VFIO msix-count").parse().unwrap();
    assert!(
        msix > 0,
        "no MSI-X interrupt of the passed virtio-gpu reached L2"
    );
    assert_eq!(log.matches("VGPU-TEST pci-evil PASS").count(), 2);
    for round in [1, 2] {
        assert!(
            log.contains(&format!("VGPU-VFIO-L1 exit round {round} rc 0")),
            "round {round} of vgpu run failed"
        );
    }
    // L1 is unharmed: both functions still there, on vfio-pci.
    let after: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("VGPU-VFIO-L1 after "))
        .collect();
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after[0].ends_with("0x1234:0x1111 driver vfio-pci"),
        "{after:?}"
    );
    assert!(
        after[1].ends_with("0x1af4:0x1050 driver vfio-pci"),
        "{after:?}"
    );
    // The framebuffer BAR is mapped: L2's drawing on it never reached the VMM.
    let bochs = bochs_l1(&log);
    let released: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("vfio: released") && l.contains(&bochs))
        .collect();
    assert!(
        !released.is_empty(),
        "no release line for the bochs function"
    );
    for l in released {
        assert!(l.contains("trapped=[0, "), "BAR0 accesses trapped: {l}");
    }
    // The bochs function shares its bus with an audio function (as a GPU does) and has no
    // reset of its own: each VM starts it with a hot reset of the bus, both functions named.
    let hot: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("vfio: hot reset of the bus") && l.contains(&bochs))
        .collect();
    assert_eq!(hot.len(), 2, "one hot reset per VM: {hot:?}");
    let audio = format!("{}.1 (group", bochs.trim_end_matches(".0"));
    assert!(hot.iter().all(|l| l.contains(&audio)), "{hot:?}");
    // 4M writes on the mapped BAR0 cost the VMM no MMIO exits (a trapped BAR costs one each).
    assert!(log.matches("vfio VGPU-TEST bar-fill PASS").count() >= 2);
    let bench = std::fs::read_to_string(out.join("bench.txt")).unwrap();
    let ours = |row: &str| -> f64 {
        let line = bench
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row} in bench.txt"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let mmio = ours("mmio_exits_per_1000_fb_writes");
    assert!(
        (-0.5..0.5).contains(&mmio),
        "MMIO exits per 1000 framebuffer writes: {mmio}"
    );
    let all = ours("vm_exits_per_1000_fb_writes");
    assert!(all < 1.0, "VM exits per 1000 framebuffer writes: {all}");
}
