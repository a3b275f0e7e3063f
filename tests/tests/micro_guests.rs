//! `vgpu run --raw` with the hello micro-guest on this machine's KVM, and the errors `vgpu run`
//! gives for bad options, missing files and a missing /dev/kvm.

use std::time::Duration;

use vgpu_tests::vmm::{kvm_unavailable, micro_guests, run_vgpu, vgpu_missing};

const TIMEOUT: Duration = Duration::from_secs(20);

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

macro_rules! skip_if {
    ($reason:expr) => {
        if let Some(reason) = $reason {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

#[test]
fn hello_prints_on_port_0xf1_and_exits_zero_on_hlt() {
    skip_if!(vgpu_missing());
    let guests = micro_guests();
    skip_if!(kvm_unavailable());
    let image = guests.join("hello.bin");
    let out = run_vgpu(&["run", "--raw", image.to_str().unwrap()], &[], TIMEOUT).unwrap();
    assert!(out.status.success(), "vgpu failed: {}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello from the micro-guest!\n"
    );
}

#[test]
fn minivmm_baseline_runs_the_same_guest_the_same_way() {
    let guests = micro_guests();
    skip_if!(kvm_unavailable());
    let out = std::process::Command::new(guests.join("minivmm"))
        .arg(guests.join("hello.bin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "minivmm failed: {}", stderr(&out));
    assert_eq!(out.stdout, b"Hello from the micro-guest!\n");
}

#[test]
fn pio_benchmark_guest_runs_its_loop_then_reports() {
    skip_if!(vgpu_missing());
    let guests = micro_guests();
    skip_if!(kvm_unavailable());
    // The benchmark patches its iteration count into the image's last 4 bytes; 5000 exits.
    let mut image = std::fs::read(guests.join("pio-bench.bin")).unwrap();
    let n = image.len();
    image[n - 4..].copy_from_slice(&5000u32.to_le_bytes());
    let path = std::env::temp_dir().join(format!("vgpu-pio-{}.bin", std::process::id()));
    std::fs::write(&path, &image).unwrap();
    let out = run_vgpu(&["run", "--raw", path.to_str().unwrap()], &[], TIMEOUT);
    let _ = std::fs::remove_file(&path);
    let out = out.unwrap();
    assert!(out.status.success(), "vgpu failed: {}", stderr(&out));
    assert_eq!(out.stdout, b"ok\n");
}

#[test]
fn missing_kvm_is_reported_clearly() {
    skip_if!(vgpu_missing());
    let guests = micro_guests();
    let image = guests.join("hello.bin");
    let out = run_vgpu(
        &["run", "--raw", image.to_str().unwrap()],
        &[("VGPU_KVM_DEVICE", "/nonexistent/kvm")],
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/kvm is missing or cannot be opened"),
        "unexpected error: {err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_options_and_files_fail_with_a_message() {
    skip_if!(vgpu_missing());
    let cases: &[(&[&str], i32, &str)] = &[
        (&["run"], 2, "--kernel"),
        (
            &["run", "--raw", "/nonexistent.bin"],
            1,
            "cannot read /nonexistent.bin",
        ),
        (
            &["run", "--kernel", "/nonexistent-bzImage"],
            1,
            "cannot read /nonexistent-bzImage",
        ),
        (
            &["run", "--raw", "x", "--kernel", "y"],
            2,
            "cannot be used with",
        ),
        (&["run", "--kernel", "k", "--mem", "lots"], 2, "not a size"),
        (&["run", "--kernel", "k", "--cpus", "0"], 2, "--cpus"),
        (
            &["run", "--kernel", "k", "--gpu", "vfio"],
            2,
            "vfio needs host=BDF or sysfsdev=PATH",
        ),
        (
            &["run", "--kernel", "k", "--gpu", "vfio,host=01:00.0"],
            2,
            "a PCI address is DDDD:BB:SS.F",
        ),
        (
            &[
                "run",
                "--kernel",
                "k",
                "--gpu",
                "virtio",
                "--gpu",
                "vhost-user,socket=/s",
            ],
            1,
            "2 virtio-gpu devices asked for",
        ),
        (
            &["run", "--kernel", "k", "--gpu", "opengl"],
            2,
            "unknown GPU kind \"opengl\"",
        ),
        (
            &["run", "--kernel", "k", "--gpu", "virtio,backend=opengl"],
            2,
            "opengl",
        ),
        (
            &["run", "--kernel", "k", "--screenshot", "a.png"],
            2,
            "--gpu",
        ),
    ];
    for (args, code, needle) in cases {
        let out = run_vgpu(args, &[], TIMEOUT).unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
    }
}

#[test]
fn a_non_bzimage_kernel_is_rejected_before_the_guest_runs() {
    skip_if!(vgpu_missing());
    let guests = micro_guests();
    skip_if!(kvm_unavailable());
    let not_a_kernel = guests.join("hello.bin");
    let out = run_vgpu(
        &["run", "--kernel", not_a_kernel.to_str().unwrap()],
        &[],
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a bzImage"),
        "unexpected: {}",
        stderr(&out)
    );
}

/// The Linux boot path on this machine's KVM, with a tiny bzImage (guests/micro/hello/
/// tiny-bzimage.S) instead of a stock kernel, which this KVM cannot run: long-mode entry, the
/// zero page's command line and initramfs, the serial console, and power-off by halting.
#[test]
fn linux_boot_path_hands_over_cmdline_and_initrd_and_powers_off_on_halt() {
    skip_if!(vgpu_missing());
    let guests = micro_guests();
    skip_if!(kvm_unavailable());
    let kernel = guests.join("tiny-bzimage");
    let initrd = std::env::temp_dir().join(format!("vgpu-initrd-{}.txt", std::process::id()));
    std::fs::write(&initrd, b"initramfs contents\n").unwrap();
    for cpus in ["1", "2"] {
        let out = run_vgpu(
            &[
                "run",
                "--kernel",
                kernel.to_str().unwrap(),
                "--initrd",
                initrd.to_str().unwrap(),
                "--cmdline",
                "console=ttyS0 quiet",
                "--mem",
                "64M",
                "--cpus",
                cpus,
            ],
            &[],
            TIMEOUT,
        );
        let out = out.unwrap();
        assert!(out.status.success(), "cpus={cpus}: {}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "console=ttyS0 quiet\ninitramfs contents\n",
            "cpus={cpus}"
        );
        assert!(
            stderr(&out).contains("powered off"),
            "cpus={cpus}: {}",
            stderr(&out)
        );
    }
    let _ = std::fs::remove_file(&initrd);
}
