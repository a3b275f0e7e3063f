//! The runner against a stand-in for a user's dEQP build: a script that prints dEQP's console
//! output and crashes, hangs, fails or flakes on the cases named so.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const FAKE_DEQP: &str = r#"#!/bin/sh
for a in "$@"; do case "$a" in --deqp-caselist-file=*) list="${a#*=}" ;; esac; done
echo "dEQP Core stand-in starting.."
while read -r case; do
  echo "Test case '$case'.."
  case "$case" in
    *crash*) kill -SEGV $$ ;;
    *hang*) sleep 30 ;;
    *known_fail*|*.fail) echo "  Fail (bad pixels)" ;;
    *flaky*) if [ -e "$FLAKY_MARK" ]; then echo "  Pass (Pass)"; else touch "$FLAKY_MARK"; echo "  Fail (once)"; fi ;;
    *unsupported*) echo "  NotSupported (no such feature)" ;;
    *) echo "  Pass (Pass)" ;;
  esac
done < "$list"
"#;

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vgpu-runner-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn crashes_hangs_flakes_and_expectations_get_their_statuses_and_the_run_goes_on() {
    let dir = scratch("deqp");
    let program = dir.join("deqp-vk");
    write(&program, FAKE_DEQP);
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let names = [
        "a.pass1",
        "a.crash",
        "a.pass2",
        "a.hang",
        "a.pass3",
        "a.fail",
        "a.flaky",
        "a.known_fail",
        "a.unsupported",
        "a.skipme",
    ];
    write(&dir.join("caselist.txt"), &names.join("\n"));
    write(&dir.join("fails.txt"), "a.known_fail,Fail\n");
    write(&dir.join("skips.txt"), "a\\.skip.*\n");
    let suite = Suite::Deqp {
        program,
        caselist: dir.join("caselist.txt"),
        args: vec![],
    };
    let target = Target {
        name: "test".into(),
        env: vec![("FLAKY_MARK".into(), dir.join("flaky-mark").into())],
        renderer: None,
        guest: None,
    };
    let expectations = Expectations::load(
        Some(&dir.join("fails.txt")),
        None,
        Some(&dir.join("skips.txt")),
    )
    .unwrap();
    let cfg = RunConfig {
        jobs: 2,
        timeout: Duration::from_millis(1500),
        retry_failures: true,
        startup: Duration::ZERO,
        scratch: dir.join("logs"),
    };
    let results = run(&suite, &target, &expectations, &cfg, None).unwrap();
    let got: Vec<(&str, Status)> = results
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    assert_eq!(
        got,
        [
            ("a.pass1", Status::Pass),
            ("a.crash", Status::Crash),
            ("a.pass2", Status::Pass),
            ("a.hang", Status::Timeout),
            ("a.pass3", Status::Pass),
            ("a.fail", Status::Fail),
            ("a.flaky", Status::Flake),
            ("a.known_fail", Status::ExpectedFail),
            ("a.unsupported", Status::Skip),
            ("a.skipme", Status::Skip),
        ]
    );
    let crash = &results[1];
    assert!(crash.detail.contains("signal"), "{}", crash.detail);
    assert!(results[6].detail.contains("passed when run again"));
    // --include narrows the run.
    let only = regex::Regex::new(r"a\.pass\d").unwrap();
    let results = run(&suite, &target, &expectations, &cfg, Some(&only)).unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.status == Status::Pass));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_renderer_that_died_is_started_again() {
    let dir = scratch("renderer");
    let socket = dir.join("sock");
    // Makes its "socket", then exits after a moment, as a crashing renderer would.
    let command = [
        "sh",
        "-c",
        "touch \"$0\"; sleep 0.2",
        socket.to_str().unwrap(),
    ]
    .map(Into::into)
    .to_vec();
    let r = Renderer::new(command, socket.clone(), dir.join("renderer.log"));
    r.ensure_running().unwrap();
    assert!(socket.exists());
    r.ensure_running().unwrap();
    assert_eq!(r.restarts.load(Ordering::Relaxed), 0, "still running");
    std::thread::sleep(Duration::from_millis(500));
    r.ensure_running().unwrap();
    assert_eq!(
        r.restarts.load(Ordering::Relaxed),
        1,
        "found dead, started again"
    );
    let never = Renderer::new(vec!["true".into()], dir.join("none"), dir.join("log2"));
    let err = never.ensure_running().unwrap_err();
    assert!(err.to_string().contains("no socket"), "{err}");
    drop(r);
    std::fs::remove_dir_all(&dir).unwrap();
}
