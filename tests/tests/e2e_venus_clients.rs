//! Vulkan frameworks from PyPI through venus and our renderer: ncnn's compute nets and wgpu's
//! compute and offscreen rendering, each run on the host's lavapipe and through `vgpu vtest`,
//! with the results compared (each script also checks its own results).

use std::process::Output;

use serde_json::Value;
use vgpu_tests::venus::{python_clients, run_native, VtestServer};
use vgpu_tests::{skipped, E2eError};

/// Runs `tests/clients/<script>` natively and through venus; the two JSON reports.
fn native_and_venus(test: &str, script: &str) -> Option<(Value, Value)> {
    let r = (|| -> Result<_, E2eError> {
        let (python, dir) = python_clients()?;
        let server = VtestServer::start(test)?;
        let script = dir.join(script);
        let native = run_native(&python, &[script.as_os_str()], 300)?;
        let venus = server.run(&python, &[script.to_str().unwrap()], 300)?;
        Ok((report("native", native), report("venus", venus)))
    })();
    match r {
        Ok(v) => Some(v),
        Err(e) if skipped(test, &e) => None,
        Err(e) => panic!("{test}: {e}"),
    }
}

fn report(what: &str, out: Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{what}: {e}: {stdout}"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn e2e_venus_ncnn_nets_match_native_lavapipe() {
    let Some((native, venus)) = native_and_venus("ncnn", "ncnn_nets.py") else {
        return;
    };
    let host = native["device"].as_str().unwrap();
    assert_eq!(
        venus["device"].as_str(),
        Some(format!("Virtio-GPU Venus ({host})").as_str()),
        "ncnn ran on venus"
    );
    let nets = native["nets"].as_object().unwrap();
    for name in [
        "convolution",
        "pooling_max",
        "pooling_avg",
        "innerproduct",
        "relu",
        "softmax",
        "small_cnn",
    ] {
        let a = floats(&nets[name]["out"]);
        let b = floats(&venus["nets"][name]["out"]);
        assert_eq!(a.len(), b.len(), "{name}: output sizes");
        assert!(!a.is_empty(), "{name}: empty output");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-3 * (1.0 + x.abs()),
                "{name}[{i}]: native {x}, venus {y}"
            );
        }
    }
    // Softmax outputs are a distribution: the nets computed something.
    let p = floats(&venus["nets"]["small_cnn"]["out"]);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-2, "{p:?}");
}

#[test]
fn e2e_venus_wgpu_compute_and_render_match_native_lavapipe() {
    let Some((native, venus)) = native_and_venus("wgpu", "wgpu_checks.py") else {
        return;
    };
    let adapter = venus["adapter"].as_str().unwrap();
    assert!(
        adapter.starts_with("Virtio-GPU Venus (") && adapter.ends_with("via Vulkan"),
        "{adapter}"
    );
    assert_eq!(native["compute"], venus["compute"], "compute results");
    assert_eq!(native["render"], venus["render"], "rendered pixels");
}
