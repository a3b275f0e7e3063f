//! Real KVM, nested: scripts/nested.sh boots a QEMU/TCG Debian guest (L1) with kvm_amd, runs
//! `vgpu run` there on a Debian kernel + initramfs (L2) with our virtio-gpu, and brings the inner
//! scanout back. Here the colour bars the inner guest drew through its virtio_gpu driver are
//! checked. It takes minutes, so it runs only with VGPU_NESTED=1 (scripts/nested.sh --test).

use std::path::Path;
use std::process::Command;

use vgpu_tests::{repo_root, Image};

fn read_png(path: &Path) -> Image {
    let file = std::fs::File::open(path).unwrap();
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|px| [px[0], px[1], px[2]])
        .collect();
    Image {
        width: info.width,
        height: info.height,
        rgb,
    }
}

#[test]
fn inner_linux_guest_draws_through_our_virtio_gpu_on_nested_kvm() {
    if std::env::var("VGPU_NESTED").map_or(true, |v| v != "1") {
        eprintln!(
            "SKIPPED nested_kvm: takes minutes of QEMU/TCG; run scripts/nested.sh --test \
             (or set VGPU_NESTED=1)"
        );
        return;
    }
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED nested_kvm: qemu-system-x86_64 missing (scripts/setup.sh installs it)");
        return;
    }
    let root = repo_root();
    let out = std::env::var_os("VGPU_NESTED_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/nested"));
    // scripts/nested.sh --test runs this test after its own run; reuse that run's results.
    if std::env::var("VGPU_NESTED_REUSE").map_or(true, |v| v != "1") {
        let status = Command::new("bash")
            .arg(root.join("scripts/nested.sh"))
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        let log = std::fs::read_to_string(out.join("l1.log")).unwrap_or_default();
        assert!(
            status.success(),
            "scripts/nested.sh failed; L1 console:\n{log}"
        );
    }
    let log = std::fs::read_to_string(out.join("l1.log")).unwrap();
    assert!(
        log.contains("VGPU-RESULT nested-kvm PASS"),
        "no /dev/kvm in L1:\n{log}"
    );
    assert!(
        log.contains("VGPU-TEST kms-modeset PASS"),
        "the inner guest's KMS modeset through our virtio-gpu failed:\n{log}"
    );
    let image = read_png(&out.join("l2.png"));
    assert_eq!((image.width, image.height), (1024, 768));
    image.check_bars().unwrap();
}
