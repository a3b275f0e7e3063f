//! `vgpu conformance`: runs a Vulkan suite through our venus renderer (or on the host's driver,
//! for comparison) and reports as deqp-runner does.
//!
//! ```sh
//! vgpu conformance --suite builtin --jobs 2 --fails tests/expectations/venus-lavapipe-fails.txt
//! vgpu conformance --deqp ~/cts/external/vulkancts/modules/vulkan/deqp-vk \
//!     --caselist ~/cts/external/vulkancts/mustpass/main/vk-default.txt --timeout 120
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::conformance::expectations::Expectations;
use crate::conformance::guest::GuestVm;
use crate::conformance::runner::{self, Renderer, RunConfig, Target};
use crate::conformance::suite::Suite;
use crate::conformance::{report, ConformanceError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BuiltinSuite {
    /// The project's vk-conformance checks (compute, transfers, sync, rendering, ...).
    Builtin,
    /// ncnn's Vulkan compute nets against its CPU path (tests/clients/ncnn_nets.py).
    Ncnn,
    /// wgpu's compute and offscreen rendering (tests/clients/wgpu_checks.py).
    Wgpu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// Mesa's venus driver on the host, over a vtest socket to `vgpu vtest` (our renderer).
    Vtest,
    /// The host's own Vulkan driver, no venus: the baseline to compare with.
    Native,
    /// Inside a VM of ours (`--kernel`, `--initrd`: an image with the test program and Mesa's
    /// venus ICD, as guests/nested/build.sh --venus makes), on `--gpu virtio,backend=vulkan`.
    Guest,
}

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// A built-in suite (ignored with --deqp).
    #[arg(long, value_enum, default_value = "builtin")]
    pub suite: BuiltinSuite,
    /// A dEQP Vulkan binary (deqp-vk of a VK-GL-CTS build), run with dEQP's command line.
    #[arg(long, requires = "caselist")]
    pub deqp: Option<PathBuf>,
    /// The dEQP case list (one case per line, as in the mustpass lists).
    #[arg(long)]
    pub caselist: Option<PathBuf>,
    /// An extra argument for dEQP (repeatable).
    #[arg(long = "deqp-arg", allow_hyphen_values = true)]
    pub deqp_args: Vec<String>,
    #[arg(long, value_enum, default_value = "vtest")]
    pub target: TargetKind,
    /// The guest target's kernel.
    #[arg(long, required_if_eq("target", "guest"))]
    pub kernel: Option<PathBuf>,
    /// The guest target's initramfs.
    #[arg(long, required_if_eq("target", "guest"))]
    pub initrd: Option<PathBuf>,
    /// The guest target's memory.
    #[arg(long, default_value = "1G")]
    pub mem: String,
    /// Seconds a guest may take to boot before its first case.
    #[arg(long, default_value_t = 300.0)]
    pub boot_timeout: f64,
    /// Parallel clients (default: one per core).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Seconds a case may run.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Known failures: `test,Fail|Crash|Timeout` per line.
    #[arg(long)]
    pub fails: Option<PathBuf>,
    /// Flaky tests: a regular expression per line.
    #[arg(long)]
    pub flakes: Option<PathBuf>,
    /// Tests not to run: a regular expression per line.
    #[arg(long)]
    pub skips: Option<PathBuf>,
    /// Run only the cases this regular expression matches.
    #[arg(long)]
    pub include: Option<String>,
    /// Do not run unexpected failures again to tell flakes apart.
    #[arg(long)]
    pub no_retry: bool,
    /// Where results.csv, failures.csv, junit.xml and the logs go.
    #[arg(long, default_value = "target/conformance")]
    pub output: PathBuf,
    /// The vk-conformance program (default: next to this vgpu).
    #[arg(long)]
    pub program: Option<PathBuf>,
    /// The venus ICD JSON (default: .cache/venus-icd/virtio_icd.json of the repository).
    #[arg(long)]
    pub icd: Option<PathBuf>,
    /// The Python with ncnn and wgpu (default: .cache/pyvenv/bin/python of the repository).
    #[arg(long)]
    pub python: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConformanceCliError {
    #[error(transparent)]
    Run(#[from] ConformanceError),
    #[error("{0}")]
    Setup(String),
    #[error("{unexpected} unexpected results (see {})", dir.display())]
    Unexpected { unexpected: usize, dir: PathBuf },
}

/// The repository this vgpu was built in (target/<profile>/vgpu), or the working directory.
fn repo_root(exe: &Path) -> PathBuf {
    exe.ancestors()
        .nth(3)
        .filter(|r| r.join("Cargo.toml").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn existing(path: PathBuf, what: &str) -> Result<PathBuf, ConformanceCliError> {
    if path.exists() {
        Ok(path)
    } else {
        Err(ConformanceCliError::Setup(format!(
            "{what} {} does not exist (scripts/setup.sh installs it)",
            path.display()
        )))
    }
}

fn suite(args: &ConformanceArgs, exe: &Path, root: &Path) -> Result<Suite, ConformanceCliError> {
    if let (Some(program), Some(caselist)) = (&args.deqp, &args.caselist) {
        return Ok(Suite::Deqp {
            program: existing(program.clone(), "dEQP binary")?,
            caselist: existing(caselist.clone(), "case list")?,
            args: args.deqp_args.clone(),
        });
    }
    let python = || {
        let p = args
            .python
            .clone()
            .unwrap_or_else(|| root.join(".cache/pyvenv/bin/python"));
        existing(p, "python with ncnn and wgpu")
    };
    Ok(match args.suite {
        BuiltinSuite::Builtin => {
            let default = exe.with_file_name("vk-conformance");
            let program = args.program.clone().unwrap_or(default);
            Suite::Builtin {
                program: existing(program, "vk-conformance (cargo build -p vgpu-tests)")?,
            }
        }
        BuiltinSuite::Ncnn => Suite::Python {
            case: "ncnn.nets".into(),
            python: python()?,
            script: existing(root.join("tests/clients/ncnn_nets.py"), "ncnn client")?,
        },
        BuiltinSuite::Wgpu => Suite::Python {
            case: "wgpu.compute_and_render".into(),
            python: python()?,
            script: existing(root.join("tests/clients/wgpu_checks.py"), "wgpu client")?,
        },
    })
}

fn target(args: &ConformanceArgs, exe: &Path, root: &Path) -> Result<Target, ConformanceCliError> {
    match args.target {
        TargetKind::Native => Ok(Target {
            name: "native".into(),
            env: Vec::new(),
            renderer: None,
            guest: None,
        }),
        TargetKind::Guest => {
            if !matches!(args.suite, BuiltinSuite::Builtin) || args.deqp.is_some() {
                return Err(ConformanceCliError::Setup(
                    "the guest target runs the builtin suite (its image carries vk-conformance)"
                        .into(),
                ));
            }
            let (Some(kernel), Some(initrd)) = (&args.kernel, &args.initrd) else {
                return Err(ConformanceCliError::Setup("--kernel and --initrd".into()));
            };
            Ok(Target {
                name: "guest".into(),
                env: Vec::new(),
                renderer: None,
                guest: Some(GuestVm {
                    vgpu: exe.into(),
                    kernel: existing(kernel.clone(), "guest kernel")?,
                    initrd: existing(initrd.clone(), "guest initramfs")?,
                    mem: args.mem.clone(),
                    gpu: "virtio,backend=vulkan".into(),
                }),
            })
        }
        TargetKind::Vtest => {
            let icd = args
                .icd
                .clone()
                .unwrap_or_else(|| root.join(".cache/venus-icd/virtio_icd.json"));
            let icd = existing(icd, "venus ICD")?;
            let socket = args.output.join("vtest.sock");
            let socket = std::path::absolute(&socket).unwrap_or(socket);
            let command: Vec<OsString> = vec![
                exe.into(),
                "vtest".into(),
                "--socket-path".into(),
                socket.clone().into(),
            ];
            let env = [
                ("VK_DRIVER_FILES", icd.into_os_string()),
                ("VN_DEBUG", "vtest".into()),
                ("VTEST_SOCKET_NAME", socket.clone().into_os_string()),
            ];
            Ok(Target {
                name: "vtest".into(),
                env: env.into_iter().map(|(k, v)| (k.into(), v)).collect(),
                renderer: Some(Renderer::new(
                    command,
                    socket,
                    args.output.join("renderer.log"),
                )),
                guest: None,
            })
        }
    }
}

pub fn run(args: ConformanceArgs) -> Result<(), ConformanceCliError> {
    let exe = std::env::current_exe().map_err(|e| ConformanceCliError::Setup(e.to_string()))?;
    let root = repo_root(&exe);
    let suite = suite(&args, &exe, &root)?;
    std::fs::create_dir_all(&args.output).map_err(ConformanceError::io(&args.output))?;
    let target = target(&args, &exe, &root)?;
    let expectations = Expectations::load(
        args.fails.as_deref(),
        args.flakes.as_deref(),
        args.skips.as_deref(),
    )?;
    let include = args
        .include
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| ConformanceCliError::Setup(format!("--include: {e}")))?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cfg = RunConfig {
        jobs,
        timeout: Duration::from_secs_f64(args.timeout.max(0.001)),
        retry_failures: !args.no_retry,
        startup: match args.target {
            TargetKind::Guest => Duration::from_secs_f64(args.boot_timeout.max(0.0)),
            _ => Duration::ZERO,
        },
        scratch: args.output.join("logs"),
    };
    let _ = std::fs::remove_dir_all(&cfg.scratch);
    let start = Instant::now();
    let results = runner::run(&suite, &target, &expectations, &cfg, include.as_ref())?;
    let elapsed = start.elapsed();
    report::write_all(&args.output, suite.name(), &results)?;
    println!(
        "vgpu conformance: suite {} on {}\n",
        suite.name(),
        target.name
    );
    print!("{}", report::summary(&results, elapsed, jobs));
    if let Some(r) = &target.renderer {
        let restarts = r.restarts.load(std::sync::atomic::Ordering::Relaxed);
        println!("renderer restarts: {restarts}");
    }
    println!("results: {}", args.output.join("results.csv").display());
    let unexpected = results.iter().filter(|r| r.status.is_unexpected()).count();
    if unexpected > 0 {
        return Err(ConformanceCliError::Unexpected {
            unexpected,
            dir: args.output,
        });
    }
    Ok(())
}
