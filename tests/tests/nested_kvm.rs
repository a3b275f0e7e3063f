//! Real KVM, nested: scripts/nested.sh boots a QEMU/TCG Debian guest (L1) with kvm_amd, runs
//! `vgpu run` there on a Debian kernel + initramfs (L2) with our virtio-gpu, and brings the inner
//! scanout back. Here the colour bars the inner guest drew through its virtio_gpu driver are
//! checked. It takes minutes, so it runs only with VGPU_NESTED=1 (scripts/nested.sh --test).

use vgpu_tests::nested::{read_png, results};

#[test]
fn inner_linux_guest_draws_through_our_virtio_gpu_on_nested_kvm() {
    let Some((out, log)) = results("nested_kvm", "display", "target/nested") else {
        return;
    };
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
