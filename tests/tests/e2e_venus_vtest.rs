//! The venus renderer behind `vgpu vtest`, driven by clients nobody here wrote: Mesa's venus
//! driver under vulkaninfo, next to vulkaninfo on the host's own lavapipe; and hostile clients
//! beside good ones.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vgpu_tests::venus::{run_with_timeout, section, vulkaninfo, VtestServer};
use vgpu_tests::{skipped, E2eError};

fn setup(test: &str) -> Option<(VtestServer, std::path::PathBuf)> {
    let r = (|| -> Result<_, E2eError> { Ok((VtestServer::start(test)?, vulkaninfo()?)) })();
    match r {
        Ok(v) => Some(v),
        Err(e) if skipped(test, &e) => None,
        Err(e) => panic!("{test}: {e}"),
    }
}

fn native(vulkaninfo: &std::path::Path, args: &[&str]) -> String {
    let out = run_with_timeout(std::process::Command::new(vulkaninfo).args(args), 60).unwrap();
    assert!(out.status.success(), "native vulkaninfo failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn e2e_venus_vulkaninfo_summary_shows_venus_on_lavapipe() {
    let Some((server, vi)) = setup("summary") else {
        return;
    };
    let out = server.run(&vi, &["--summary"], 60).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "vulkaninfo through venus failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let native = native(&vi, &["--summary"]);
    let field = |t: &str, k: &str| {
        t.lines().find_map(|l| {
            l.trim()
                .strip_prefix(k)
                .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
        })
    };
    let host_name = field(&native, "deviceName").expect("native device name");
    assert_eq!(
        field(&text, "deviceName"),
        Some(format!("Virtio-GPU Venus ({host_name})")),
        "{text}"
    );
    assert_eq!(field(&text, "driverName").as_deref(), Some("venus"));
    assert_eq!(
        field(&text, "vendorID"),
        field(&native, "vendorID"),
        "the host's vendor id passes through"
    );
}

#[test]
fn e2e_venus_vulkaninfo_full_limits_and_features_match_native() {
    let Some((server, vi)) = setup("full") else {
        return;
    };
    let out = server.run(&vi, &[], 120).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let venus = String::from_utf8_lossy(&out.stdout).into_owned();
    let native = native(&vi, &[]);
    for title in [
        "VkPhysicalDeviceLimits",
        "VkPhysicalDeviceSparseProperties",
        "VkPhysicalDeviceFeatures",
    ] {
        let (v, n) = (section(&venus, title), section(&native, title));
        assert!(!n.is_empty(), "{title}: native vulkaninfo has it");
        assert_eq!(v, n, "{title} differs between venus and native lavapipe");
    }
    // Memory heaps: the same sizes (venus documents no filter for them).
    let heaps = |t: &str| {
        t.lines()
            .filter(|l| l.trim_start().starts_with("size"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(heaps(&venus), heaps(&native));
}

fn msg(cmd: u32, words: &[u32]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&(words.len() as u32).to_le_bytes());
    m.extend_from_slice(&cmd.to_le_bytes());
    for w in words {
        m.extend_from_slice(&w.to_le_bytes());
    }
    m
}

/// A client that handshakes, makes a venus context, then sends `stream` as a command stream.
fn hostile_client(server: &VtestServer, stream: &[u32]) -> UnixStream {
    let mut s = UnixStream::connect(&server.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&msg(11, &[3])).unwrap(); // PROTOCOL_VERSION
    let mut hdr = [0u8; 12];
    s.read_exact(&mut hdr).unwrap();
    s.write_all(&msg(17, &[4])).unwrap(); // CONTEXT_INIT venus
    let mut submit = vec![1, 0, 7, stream.len() as u32, 7, 0, 0];
    submit.extend_from_slice(stream);
    s.write_all(&msg(24, &submit)).unwrap(); // SUBMIT_CMD2
    s
}

#[test]
fn e2e_venus_hostile_clients_end_alone_and_good_client_keeps_working() {
    let Some((server, vi)) = setup("hostile") else {
        return;
    };
    // Garbage venus commands (unknown command type, then truncated vkCreateRingMESA with a
    // nonexistent resource), a bad vtest message, and a message claiming 4 GiB.
    let mut clients = vec![
        hostile_client(&server, &[0xdead, 0, 1, 2, 3]),
        hostile_client(&server, &[188, 0, 1, 0, 1, 0]),
    ];
    let mut bad = UnixStream::connect(&server.socket).unwrap();
    bad.write_all(&msg(24, &[5, 0, 0])).unwrap();
    clients.push(bad);
    let mut huge = UnixStream::connect(&server.socket).unwrap();
    huge.write_all(&[0xff, 0xff, 0xff, 0xff, 24, 0, 0, 0])
        .unwrap();
    clients.push(huge);

    // Each hostile worker ends (its socket closes) while the server keeps serving.
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 64];
        let n = c
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("client {i}: worker still alive: {e}"));
        assert_eq!(n, 0, "client {i}: its worker closed the connection");
    }
    let out = server.run(&vi, &["--summary"], 60).unwrap();
    assert!(out.status.success(), "a good client after hostile ones");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Virtio-GPU Venus"));
}

#[test]
fn e2e_venus_clients_leave_no_worker_and_no_fd_behind() {
    let Some((server, vi)) = setup("leaks") else {
        return;
    };
    // Waits up to 2 s for every worker to exit and the server's fds to settle (the parent holds
    // an accepted connection for a moment before its worker takes it).
    let settle = |want_fds: Option<usize>| {
        for _ in 0..100 {
            if server.workers().is_empty() && want_fds.is_none_or(|n| server.fd_count() == n) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (server.workers(), server.fd_count())
    };
    // The baseline: after start-up's readiness probe and one client have come and gone.
    assert!(server
        .run(&vi, &["--summary"], 60)
        .unwrap()
        .status
        .success());
    let (_, fds) = settle(None);
    for run in 0..4 {
        let out = server.run(&vi, &["--summary"], 60).unwrap();
        assert!(out.status.success(), "run {run}");
        let (left, now) = settle(Some(fds));
        assert!(left.is_empty(), "run {run}: workers still alive: {left:?}");
        assert_eq!(now, fds, "run {run}: the server's fds");
    }
}

/// `(name, PASS|FAIL)` of each CHECK line.
fn check_lines(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.strip_prefix("CHECK ")?.split(' ');
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

#[test]
fn e2e_venus_conformance_suite_passes_as_on_native_lavapipe() {
    let Some((server, _)) = setup("conformance") else {
        return;
    };
    let suite = std::path::Path::new(env!("CARGO_BIN_EXE_vk-conformance"));
    let native = run_with_timeout(&mut std::process::Command::new(suite), 120).unwrap();
    let venus = server.run(suite, &[], 120).unwrap();
    let (n, v) = (
        String::from_utf8_lossy(&native.stdout),
        String::from_utf8_lossy(&venus.stdout),
    );
    assert!(native.status.success(), "native:\n{n}");
    assert!(
        venus.status.success(),
        "through venus:\n{v}\n{}",
        String::from_utf8_lossy(&venus.stderr)
    );
    assert!(v.contains("DEVICE Virtio-GPU Venus"), "{v}");
    let (nc, vc) = (check_lines(&n), check_lines(&v));
    assert!(nc.len() >= 9, "{n}");
    assert_eq!(vc, nc, "the same checks, the same results");
}

#[test]
fn e2e_venus_device_selector_by_name_and_index() {
    let test = "e2e_venus_device_selector_by_name_and_index";
    let servers = (|| -> Result<_, E2eError> {
        Ok((
            VtestServer::start_with("by-name", &["--device", "llvmpipe"])?,
            VtestServer::start_with("by-index", &["--device", "0"])?,
            VtestServer::start_with("no-such", &["--device", "no-such-gpu"])?,
            vulkaninfo()?,
        ))
    })();
    let (by_name, by_index, none, vi) = match servers {
        Ok(v) => v,
        Err(e) if skipped(test, &e) => return,
        Err(e) => panic!("{test}: {e}"),
    };
    for (label, server) in [("by name", &by_name), ("by index", &by_index)] {
        let out = server.run(&vi, &["--summary"], 60).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Virtio-GPU Venus (llvmpipe"),
            "{label}:\n{text}"
        );
    }
    // No host device matches: the driver sees none, so the client gets no venus device.
    let out = server_run_lossy(&none, &vi);
    assert!(
        !out.contains("Virtio-GPU Venus"),
        "a device that does not match was exposed:\n{out}"
    );
}

fn server_run_lossy(server: &VtestServer, vi: &std::path::Path) -> String {
    let out = server.run(vi, &["--summary"], 60).unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn e2e_venus_abandoned_objects_are_destroyed_with_their_device() {
    let test = "abandon";
    let log = std::env::temp_dir().join(format!("vgpu-vtest-abandon-{}.log", std::process::id()));
    let conformance = std::path::Path::new(env!("CARGO_BIN_EXE_vk-conformance"));
    let server = match VtestServer::start_logged(test, &log) {
        Ok(v) => v,
        Err(e) if skipped(test, &e) => return,
        Err(e) => panic!("{test}: {e}"),
    };
    let out = server.run(conformance, &["--abandon"], 60).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ABANDONED"), "{stdout}");
    // The client is gone: its worker tears the context down and exits.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !server.workers().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server.workers().is_empty(),
        "the worker outlived its client"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let destroyed = text
        .lines()
        .find_map(|l| {
            let rest = l.split("venus: destroying ").nth(1)?;
            rest.split(' ').next()?.parse::<usize>().ok()
        })
        .unwrap_or_else(|| panic!("no device teardown logged:\n{text}"));
    // Memory, buffer, fence, command pool + its buffer, descriptor pool.
    assert!(
        destroyed >= 6,
        "only {destroyed} objects destroyed:\n{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    // The server still serves.
    let out = server.run(conformance, &[], 120).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_file(&log);
}
