//! A QEMU guest (TCG, vhost-user-gpu-pci) on one slice and a venus tenant on another, both
//! served by one `vgpu slices serve`: the guest's display works while the tenant computes, the
//! guest's framebuffer counts against its slice's quota, and a slice too small for the
//! framebuffer refuses it (VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY, which Linux's driver logs).

use std::process::Stdio;
use std::time::Duration;

use vgpu_tests::slices::SliceServer;
use vgpu_tests::{skipped, GpuDevice, Guest, GuestSpec};

const BOOT: Duration = Duration::from_secs(60);

fn server(test: &str, slices: &str) -> Option<SliceServer> {
    match SliceServer::start(test, "fair", slices) {
        Ok(s) => Some(s),
        Err(e) if skipped(test, &e) => None,
        Err(e) => panic!("{test}: {e}"),
    }
}

fn boot(test: &str, server: &SliceServer, slice: &str, hold: bool) -> Option<Guest> {
    let socket = server.dir.join(format!("{slice}-gpu.sock"));
    let mut spec = GuestSpec::new(GpuDevice::External { socket }, &["vgpu-kms --hold"]);
    spec.hold = hold;
    match Guest::boot(&spec) {
        Ok(g) => Some(g),
        Err(e) if skipped(test, &e) => None,
        Err(e) => panic!("{test}: {e}\nserver log:\n{}", server.log()),
    }
}

fn slices(gui_memory: &str, dir_hint: &str) -> String {
    format!(
        "[[slice]]\nname = \"gui\"\nmemory = \"{gui_memory}\"\nvhost_user = \"{dir_hint}/gui-gpu.sock\"\n\
         [[slice]]\nname = \"calc\"\nmemory = \"256M\"\n"
    )
}

/// The slices file's directory: the helper's, made up front so the GPU socket can live in it.
fn dir_of(test: &str) -> String {
    std::env::temp_dir()
        .join(format!("vgpu-slices-{test}-{}", std::process::id()))
        .display()
        .to_string()
}

#[test]
fn e2e_slices_guest_display_works_while_a_tenant_computes() {
    let test = "slices-guest";
    let Some(server) = server(test, &slices("64M", &dir_of(test))) else {
        return;
    };
    let mut tenant = server.tenant("calc", "tenant");
    tenant
        .env("VGPU_TENANT_SECONDS", "90")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut tenant = tenant.spawn().expect("spawn tenant");
    server.wait_for("calc", 20, |r| r["jobs"].as_u64() > Some(10));
    let Some(mut guest) = boot(test, &server, "gui", true) else {
        let _ = tenant.kill();
        let _ = tenant.wait();
        return;
    };
    let jobs_before = server.slice("calc")["jobs"].as_u64().unwrap();
    guest
        .screendump_bars(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.log()));
    // The framebuffer (1024x768, 4 bytes a pixel) is the gui slice's.
    let gui = server.slice("gui");
    let used = gui["memory_used"].as_u64().unwrap();
    assert!(
        used >= 1024 * 768 * 4,
        "gui slice holds its framebuffer: {gui}"
    );
    let calc = server.slice("calc");
    assert!(
        calc["jobs"].as_u64().unwrap() > jobs_before,
        "the tenant computed meanwhile: {calc}"
    );
    assert_eq!(calc["clients"], 1);
    tenant.kill().unwrap();
    let _ = tenant.wait();
    drop(guest);
}

#[test]
fn e2e_slices_guest_framebuffer_over_quota_is_refused() {
    let test = "slices-guest-quota";
    // 1 MiB cannot hold a 1024x768 framebuffer.
    let Some(server) = server(test, &slices("1M", &dir_of(test))) else {
        return;
    };
    let Some(mut guest) = boot(test, &server, "gui", true) else {
        return;
    };
    // The guest's driver logs the host's error and goes on; what it draws never shows.
    let _ = guest.wait_done(BOOT);
    assert!(
        guest.screendump_bars(Duration::from_secs(5)).is_err(),
        "a framebuffer over the quota was shown"
    );
    assert!(
        server.log().contains("do not fit the slice's quota"),
        "the refusal is logged:\n{}",
        server.log()
    );
    assert_eq!(server.slice("gui")["memory_used"], 0);
}
