//! `vgpu conformance` on the host through our venus renderer: the built-in suites run with the
//! committed expectations (tests/expectations/venus-lavapipe-*.txt) and pass; results come as
//! deqp-runner's CSV and JUnit; a fails list that no longer holds makes the run fail with the
//! new pass named.

use std::path::{Path, PathBuf};
use std::process::Command;

use vgpu_tests::{repo_root, skipped, vgpu_bin, E2eError};

/// Runs `vgpu conformance` with the committed expectations, or `fails` instead of the fails list.
fn conformance(
    test: &str,
    out: &Path,
    fails: Option<&Path>,
    extra: &[&str],
) -> Option<std::process::Output> {
    let r = (|| -> Result<_, E2eError> {
        let root = repo_root();
        let icd = root.join(".cache/venus-icd/virtio_icd.json");
        if !icd.exists() {
            return Err(E2eError::Skip(format!(
                "{} (scripts/setup.sh)",
                icd.display()
            )));
        }
        let vgpu = vgpu_bin()?;
        let expectations = root.join("tests/expectations");
        let list = |kind: &str| expectations.join(format!("venus-lavapipe-{kind}.txt"));
        Command::new(vgpu)
            .arg("conformance")
            .arg("--output")
            .arg(out)
            .arg("--fails")
            .arg(fails.map_or_else(|| list("fails"), Path::to_path_buf))
            .arg("--flakes")
            .arg(list("flakes"))
            .arg("--skips")
            .arg(list("skips"))
            .args(extra)
            .output()
            .map_err(|source| E2eError::Io {
                what: "vgpu conformance".into(),
                source,
            })
    })();
    match r {
        Ok(o) => Some(o),
        Err(e) if skipped(test, &e) => None,
        Err(e) => panic!("{test}: {e}"),
    }
}

fn out_dir(name: &str) -> PathBuf {
    let d = repo_root().join("target/e2e-conformance").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn csv(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out.join("results.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "test,status,duration: {l}");
            assert!(f[2].parse::<f64>().is_ok(), "duration: {l}");
            (f[0].to_string(), f[1].to_string())
        })
        .collect()
}

#[test]
fn e2e_builtin_suites_pass_through_venus_with_the_committed_expectations() {
    for (suite, jobs) in [("builtin", "2"), ("ncnn", "1"), ("wgpu", "1")] {
        let out = out_dir(suite);
        let Some(o) = conformance(
            "e2e_conformance",
            &out,
            None,
            &["--suite", suite, "--jobs", jobs],
        ) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{suite}: {}\n{stdout}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        let results = csv(&out);
        assert!(!results.is_empty(), "{suite}: no results");
        for (name, status) in &results {
            assert!(
                status == "Pass" || status == "ExpectedFail",
                "{name},{status}"
            );
        }
        if suite == "builtin" {
            assert!(
                results.len() >= 14,
                "every vk-conformance check: {results:?}"
            );
        }
        let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
        assert!(junit.contains(&format!("tests=\"{}\" failures=\"0\"", results.len())));
        assert!(stdout.contains("| Pass |"), "summary table:\n{stdout}");
    }
}

#[test]
fn e2e_a_fails_list_that_no_longer_holds_fails_the_run() {
    let out = out_dir("new-pass");
    std::fs::create_dir_all(&out).unwrap();
    let fails = out.join("stale-fails.txt");
    std::fs::write(&fails, "vk-conformance.compute_dispatch,Fail\n").unwrap();
    let Some(o) = conformance(
        "e2e_conformance_new_pass",
        &out,
        Some(&fails),
        &["--include", "compute_dispatch|transfers"],
    ) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success(),
        "a new pass must fail the run:\n{stdout}"
    );
    assert!(
        stdout.contains("New passes (take them off the fails list) (1):\n  vk-conformance.compute_dispatch,UnexpectedPass"),
        "{stdout}"
    );
    let results = csv(&out);
    assert_eq!(
        results,
        [
            (
                "vk-conformance.compute_dispatch".into(),
                "UnexpectedPass".into()
            ),
            ("vk-conformance.transfers".into(), "Pass".into()),
        ]
    );
    let failures = std::fs::read_to_string(out.join("failures.csv")).unwrap();
    assert!(failures.starts_with("vk-conformance.compute_dispatch,UnexpectedPass,"));
}
