//! Software slices of the host GPU (`vgpu slices serve`): real venus tenants (Mesa's driver
//! over vtest) on slices of one server process. Shares follow weights and follow a policy
//! switched while they run; quotas are the heap the tenant sees and what it can allocate, and
//! come back when a tenant dies; a tenant killed mid-run leaves the others running.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vgpu_tests::skipped;
use vgpu_tests::slices::SliceServer;

fn server(test: &str, policy: &str, slices: &str) -> Option<SliceServer> {
    match SliceServer::start(test, policy, slices) {
        Ok(s) => Some(s),
        Err(e) if skipped(test, &e) => None,
        Err(e) => panic!("{test}: {e}"),
    }
}

fn spawn(mut cmd: std::process::Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tenant")
}

/// The tenant's `RESULT` line once it exits.
fn result(child: Child) -> f64 {
    let out = child.wait_with_output().expect("tenant output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tenant failed ({}): {stdout}",
        out.status
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RESULT in {stdout:?}"))
}

fn used_ms(server: &SliceServer, slice: &str) -> f64 {
    server.slice(slice)["used_ms"].as_f64().expect("used_ms")
}

/// a's and b's shares of the device time used over the `window` after `settle`, from the
/// server's per-slice totals; the server's own one-second figure must agree.
fn shares(server: &SliceServer, settle: Duration, window: Duration) -> (f64, f64) {
    std::thread::sleep(settle);
    let (a0, b0) = (used_ms(server, "a"), used_ms(server, "b"));
    std::thread::sleep(window);
    let (a, b) = (used_ms(server, "a") - a0, used_ms(server, "b") - b0);
    let measured = server.slice("b")["measured"].as_f64().unwrap();
    let b_share = b / (a + b);
    assert!(
        (measured - b_share).abs() < 0.1,
        "list's measured share {measured:.3} against the totals' {b_share:.3}"
    );
    (a / (a + b), b_share)
}

fn steady_shares(server: &SliceServer) -> (f64, f64) {
    shares(
        server,
        Duration::from_millis(200),
        Duration::from_millis(2000),
    )
}

#[test]
fn e2e_slices_share_by_weight_switch_policy_live_and_survive_a_crash() {
    const SLICES: &str = "[[slice]]\nname = \"a\"\nmemory = \"256M\"\n\
        [[slice]]\nname = \"b\"\nmemory = \"256M\"\nweight = 3\n";
    let test = "slices-shares";
    let Some(server) = server(test, "fair", SLICES) else {
        return;
    };
    let run = |slice: &str, seconds: &str| {
        let mut cmd = server.tenant(slice, "tenant");
        cmd.env("VGPU_TENANT_SECONDS", seconds);
        spawn(cmd)
    };
    let mut a = run("a", "60");
    let b = run("b", "10");
    server.wait_for("b", 20, |r| r["jobs"].as_u64() > Some(20));
    let (share_a, share_b) = steady_shares(&server);
    println!("fair, weights 1:3: a {share_a:.3}, b {share_b:.3}");
    assert!(
        (share_b - 0.75).abs() <= 0.05,
        "b's share {share_b:.3}, wanted 0.75 +- 0.05"
    );
    assert!((server.slice("b")["target"].as_f64().unwrap() - 0.75).abs() < 1e-6);

    // Switch while both run: equal shares within a second.
    let switched = Instant::now();
    let table = server.control(&["policy", "equal-share"]).unwrap();
    assert!(table.starts_with("policy equal-share"), "{table}");
    // The second after the switch (its first 200 ms left to the jobs already granted).
    let (share_a, share_b) = shares(&server, Duration::from_millis(200), Duration::from_secs(1));
    println!(
        "equal-share after {:?}: a {share_a:.3}, b {share_b:.3}",
        switched.elapsed()
    );
    assert!(
        (share_b - 0.5).abs() <= 0.05,
        "b's share after the switch {share_b:.3}"
    );

    // A weight change takes effect without restarting anyone.
    server.control(&["policy", "fair"]).unwrap();
    server.control(&["set", "a", "weight=3"]).unwrap();
    let (_, share_b) = steady_shares(&server);
    println!("fair, weights 3:3: b {share_b:.3}");
    assert!(
        (share_b - 0.5).abs() <= 0.05,
        "b's share at equal weights {share_b:.3}"
    );
    assert_eq!(server.slice("a")["weight"], 3);

    // a dies mid-run; b keeps going and finishes its run.
    let b_jobs = server.slice("b")["jobs"].as_u64().unwrap();
    a.kill().unwrap();
    let _ = a.wait();
    server.wait_for("a", 10, |r| r["clients"] == 0);
    server.wait_for("b", 10, |r| r["jobs"].as_u64() > Some(b_jobs + 50));
    assert!(result(b) > 0.0, "b completed its jobs");
    let err = server.control(&["set", "nobody", "weight=2"]).unwrap_err();
    assert!(err.contains("no slice \"nobody\""), "{err}");
    let err = server.control(&["set", "a", "weight=99"]).unwrap_err();
    assert!(err.contains("weight 99"), "{err}");
}

#[test]
fn e2e_slices_quota_is_the_heap_refuses_past_it_and_returns_when_a_tenant_dies() {
    const SLICES: &str = "[[slice]]\nname = \"a\"\nmemory = \"128M\"\n\
        [[slice]]\nname = \"b\"\nmemory = \"256M\"\n";
    let test = "slices-quota";
    let Some(server) = server(test, "fair", SLICES) else {
        return;
    };
    // Mesa's venus allocates asynchronously unless told not to, and then never sees a host
    // error: the synchronous path is the one that can report the quota's refusal.
    let alloc = |slice: &str, hold: &str| {
        let mut cmd = server.tenant(slice, "quota");
        cmd.env("VN_PERF", "no_async_mem_alloc")
            .env("VGPU_QUOTA_HOLD_SECONDS", hold);
        spawn(cmd)
    };
    // Two slices allocating at once: each gets its own quota, no more.
    let (a, b) = (alloc("a", "0"), alloc("b", "0"));
    let lines = |c: Child| -> Vec<String> {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    for (child, quota) in [(a, 128u64 << 20), (b, 256 << 20)] {
        let out = lines(child);
        assert!(
            out.contains(&format!("HEAP {quota}")),
            "the heap is the quota: {out:?}"
        );
        assert!(
            out.contains(&"REFUSED ERROR_OUT_OF_DEVICE_MEMORY".to_string()),
            "{out:?}"
        );
        assert!(out.contains(&format!("RESULT {quota}")), "{out:?}");
    }
    assert_eq!(server.slice("a")["memory_used"], 0);
    // `top` draws the same table in place.
    let top = server
        .control(&["top", "--count", "2", "--interval-ms", "10"])
        .unwrap();
    assert_eq!(
        top.matches("\x1b[H\x1b[2Jpolicy fair\n").count(),
        2,
        "{top:?}"
    );
    assert!(top.contains("128.0"), "the quota in MiB: {top}");

    // A tenant killed while it holds its quota gives it back.
    let mut holder = alloc("a", "60");
    let mut first = String::new();
    let mut stdout = BufReader::new(holder.stdout.take().unwrap());
    while !first.starts_with("HOLDING") {
        first.clear();
        assert!(
            stdout.read_line(&mut first).unwrap() > 0,
            "tenant ended early"
        );
    }
    let row: Value = server.slice("a");
    assert_eq!(row["memory_used"], 128u64 << 20, "{row}");
    holder.kill().unwrap();
    let _ = holder.wait();
    server.wait_for("a", 10, |r| r["memory_used"] == 0);
    // And the slice serves the next tenant its full quota.
    let out = lines(alloc("a", "0"));
    assert!(out.contains(&format!("RESULT {}", 128u64 << 20)), "{out:?}");
}

/// A config the server refuses is a plain error, not a half-started server.
#[test]
fn e2e_slices_bad_config_is_a_plain_error() {
    let vgpu = match vgpu_tests::vgpu_bin() {
        Ok(v) => v,
        Err(e) if skipped("slices-config", &e) => return,
        Err(e) => panic!("{e}"),
    };
    let dir = std::env::temp_dir().join(format!("vgpu-slices-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        "policy = \"lottery\"\n[[slice]]\nname = \"a\"\nmemory = \"1M\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(vgpu)
        .args(["slices", "serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lottery"), "{err}");
}

/// Software slices as `vgpu mdev` shows them: the `vgpu-slices` parent with the file's types,
/// instances made and removed with mdevctl's verbs, a definition started by UUID, and a slice
/// in use refused removal.
#[test]
fn e2e_slices_are_managed_with_mdev_verbs() {
    const SLICES: &str = "[[slice]]\nname = \"fixed\"\nmemory = \"64M\"\n\
        [[type]]\nname = \"128M\"\nmemory = \"128M\"\ninstances = 2\nweight = 2\n";
    let test = "slices-mdev";
    let Some(server) = server(test, "fair", SLICES) else {
        return;
    };
    let root = server.dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mdev = |args: &[&str]| -> Result<String, String> {
        let out = std::process::Command::new(vgpu_tests::vgpu_bin().unwrap())
            .arg("mdev")
            .arg("--root")
            .arg(&root)
            .arg("--slices-control")
            .arg(server.control_socket())
            .args(args)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match out.status.success() {
            true => Ok(text(&out.stdout)),
            false => Err(text(&out.stderr)),
        }
    };
    let available = || -> u64 {
        let types: Value = serde_json::from_str(&mdev(&["types", "--dumpjson"]).unwrap()).unwrap();
        types[0]["vgpu-slices"][0]["vgpu-slices-128M"]["available_instances"]
            .as_u64()
            .expect("the type is listed")
    };
    assert_eq!(available(), 2);
    let first = mdev(&["start", "-p", "vgpu-slices", "-t", "vgpu-slices-128M"]).unwrap();
    let first = first.trim().to_string();
    assert_eq!(available(), 1);
    // A definition (mdevctl's file format, under the root) started by its UUID.
    let defined = "0b5c9d1e-1111-4222-8333-444455556666";
    mdev(&[
        "define",
        "-p",
        "vgpu-slices",
        "-t",
        "vgpu-slices-128M",
        "-u",
        defined,
    ])
    .unwrap();
    mdev(&["start", "-u", defined]).unwrap();
    assert_eq!(available(), 0);
    let err = mdev(&["start", "-p", "vgpu-slices", "-t", "vgpu-slices-128M"]).unwrap_err();
    assert!(err.contains("no instances left"), "{err}");
    let list = mdev(&["list"]).unwrap();
    for uuid in [first.as_str(), defined] {
        assert!(
            list.contains(&format!("{uuid} vgpu-slices vgpu-slices-128M")),
            "{list}"
        );
    }
    let rows = |list: &str| list.lines().filter(|l| !l.is_empty()).count();
    assert_eq!(rows(&list), 3, "two made, one from the file: {list}");
    assert!(list.contains(&format!(
        "{defined} vgpu-slices vgpu-slices-128M manual (defined)"
    )));

    // A tenant on a made slice sees the type's memory as its heap; while it is connected the
    // slice cannot go.
    let row = server.slice(&first);
    let mut holder = server.tenant(&first, "quota");
    holder
        .env("VGPU_QUOTA_HOLD_SECONDS", "60")
        .env("VN_PERF", "no_async_mem_alloc")
        .env("VTEST_SOCKET_NAME", row["socket"].as_str().unwrap());
    let mut holder = spawn(holder);
    let mut stdout = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("HOLDING") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "tenant ended early"
        );
        if let Some(heap) = line.strip_prefix("HEAP ") {
            assert_eq!(heap.trim(), (128u64 << 20).to_string());
        }
    }
    let err = mdev(&["stop", "-u", &first]).unwrap_err();
    assert!(err.contains("in use"), "{err}");
    holder.kill().unwrap();
    let _ = holder.wait();
    server.wait_for(&first, 10, |r| r["clients"] == 0);
    mdev(&["stop", "-u", &first]).unwrap();
    mdev(&["stop", "-u", defined]).unwrap();
    assert_eq!(available(), 2);
    assert_eq!(rows(&mdev(&["list"]).unwrap()), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.dir.join(format!("{first}.sock")).exists() {
        assert!(
            Instant::now() < deadline,
            "the removed slice's socket stays"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
