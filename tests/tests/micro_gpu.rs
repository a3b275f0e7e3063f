//! The full guest-CPU -> device loop on this machine's KVM: the long-mode micro-guest
//! (guests/micro/gpu) finds our virtio-gpu on PCI, drives it through the virtio-pci transport and
//! draws; `vgpu run --screenshot` reads the scanout back and the pixels are checked here.

use std::time::Duration;

use vgpu_tests::vmm::{kvm_unavailable, micro_guests, run_vgpu, vgpu_missing};

const TIMEOUT: Duration = Duration::from_secs(60);
const WIDTH: u32 = 320;
const HEIGHT: u32 = 200;

/// Decodes an RGBA PNG: (width, height, pixels).
fn read_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgba);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Runs the guest with `backend`; returns None (after printing why) when the test must skip.
fn run_gpu_guest(backend: &str) -> Option<()> {
    if let Some(reason) = vgpu_missing().or_else(kvm_unavailable) {
        eprintln!("SKIPPED micro_gpu ({backend}): {reason}");
        return None;
    }
    let image = micro_guests().join("gpu.bin");
    let shot = std::env::temp_dir().join(format!(
        "vgpu-micro-gpu-{backend}-{}.png",
        std::process::id()
    ));
    let gpu = format!("virtio,backend={backend},width={WIDTH},height={HEIGHT}");
    let args = [
        "run",
        "--raw",
        image.to_str().unwrap(),
        "--mem",
        "16M",
        "--gpu",
        &gpu,
        "--screenshot",
        shot.to_str().unwrap(),
    ];
    let out = run_vgpu(&args, &[], TIMEOUT).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if backend != "software"
        && stderr.contains("backend")
        && !out.status.success()
        && (stderr.contains("not compiled") || stderr.contains("failed to start"))
    {
        eprintln!("SKIPPED micro_gpu ({backend}): backend unavailable: {stderr}");
        return None;
    }
    assert!(
        out.status.success(),
        "vgpu failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("display 320x200"),
        "guest saw the configured mode: {stdout}"
    );
    assert!(
        stdout.contains("gpu-guest: PASS"),
        "guest verdict: {stdout}"
    );

    let (w, h, rgba) = read_png(&shot);
    let _ = std::fs::remove_file(&shot);
    assert_eq!((w, h), (WIDTH, HEIGHT));
    let px = |x: u32, y: u32| {
        let i = (y * w + x) as usize * 4;
        [rgba[i], rgba[i + 1], rgba[i + 2]]
    };
    let (red, green, blue, white, yellow) = (
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 255],
        [255, 255, 0],
    );
    // Quadrants, from the full-screen transfer.
    for (x, y, want, what) in [
        (0, 0, red, "top-left corner"),
        (80, 50, red, "top-left"),
        (240, 50, green, "top-right"),
        (WIDTH - 1, 0, green, "top-right corner"),
        (80, 150, blue, "bottom-left"),
        (240, 150, white, "bottom-right"),
        (WIDTH - 1, HEIGHT - 1, white, "bottom-right corner"),
    ] {
        assert_eq!(px(x, y), want, "{what} pixel ({x},{y})");
    }
    // The 32x32 yellow square at the centre, from a sub-rectangle transfer with an offset; the
    // pixels right around it must be untouched.
    for (x, y) in [(144, 84), (175, 84), (144, 115), (175, 115), (160, 100)] {
        assert_eq!(px(x, y), yellow, "square pixel ({x},{y})");
    }
    assert_eq!(px(143, 100), blue);
    assert_eq!(px(176, 100), white);
    assert_eq!(px(150, 83), red);
    assert_eq!(px(170, 116), white);
    Some(())
}

#[test]
fn long_mode_guest_draws_through_virtio_pci_software_backend() {
    run_gpu_guest("software");
}

#[test]
fn long_mode_guest_draws_through_virtio_pci_vulkan_backend() {
    run_gpu_guest("vulkan");
}

#[test]
fn guest_reports_failure_when_no_gpu_is_plugged_in() {
    if let Some(reason) = vgpu_missing().or_else(kvm_unavailable) {
        eprintln!("SKIPPED micro_gpu (no gpu): {reason}");
        return;
    }
    let image = micro_guests().join("gpu.bin");
    let out = run_vgpu(
        &["run", "--raw", image.to_str().unwrap(), "--mem", "16M"],
        &[],
        TIMEOUT,
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("gpu-guest: FAIL no virtio-gpu on bus 0"),
        "{stdout}"
    );
    assert!(!stdout.contains("PASS"));
}
