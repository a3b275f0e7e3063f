//! Runs a suite's cases in parallel workers against a target. Every batch is a process of its
//! own with a per-case timeout (dEQP's counts from the start of each case); a crash or a hang
//! ends that process, the case in flight gets Crash or Timeout, and the rest of the batch goes
//! back on the queue. A renderer that died is started again before the next batch. Failures the
//! expectations do not explain are run once more, alone: a pass then makes them a Flake.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::caselog::CaseLog;
use super::expectations::Expectations;
use super::guest::GuestVm;
use super::suite::Suite;
use super::{CaseResult, ConformanceError, Status};

/// A process serving the tests' Vulkan (our `vgpu vtest`), restarted when it dies.
pub struct Renderer {
    command: Vec<OsString>,
    socket: PathBuf,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    /// Times it was found dead and started again.
    pub restarts: AtomicU32,
}

impl Renderer {
    /// `command` serves on `socket`; its stderr goes to `log`.
    pub fn new(command: Vec<OsString>, socket: PathBuf, log: PathBuf) -> Self {
        Renderer {
            command,
            socket,
            log,
            child: Mutex::new(None),
            restarts: AtomicU32::new(0),
        }
    }

    /// Starts the renderer if it is not running, and waits for its socket.
    pub fn ensure_running(&self) -> Result<(), ConformanceError> {
        let mut child = self.child.lock().unwrap();
        if let Some(c) = child.as_mut() {
            match c.try_wait() {
                Ok(None) => return Ok(()),
                Ok(Some(status)) => {
                    warn!(%status, "conformance: the renderer died; starting it again");
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => warn!("conformance: renderer status: {e}"),
            }
        }
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(ConformanceError::io(&self.log))?;
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| ConformanceError::Renderer("empty command".into()))?;
        let started = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                ConformanceError::Renderer(format!("{}: {e}", program.to_string_lossy()))
            })?;
        *child = Some(started);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.socket.exists() {
            if Instant::now() > deadline {
                return Err(ConformanceError::Renderer(format!(
                    "no socket {} after 10 s (see {})",
                    self.socket.display(),
                    self.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// The run is over: the renderer goes, and its socket with it.
impl Drop for Renderer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Where the tests' Vulkan comes from: environment for every test process and a renderer (the
/// host), or a VM each batch runs in (a guest).
pub struct Target {
    pub name: String,
    pub env: Vec<(OsString, OsString)>,
    pub renderer: Option<Renderer>,
    pub guest: Option<GuestVm>,
}

impl Target {
    /// Cases per process: a VM runs all of them (a boot costs more than any case).
    fn batch_size(&self, suite: &Suite) -> usize {
        match self.guest {
            Some(_) => usize::MAX,
            None => suite.batch_size(),
        }
    }
}

pub struct RunConfig {
    pub jobs: usize,
    /// Per case.
    pub timeout: Duration,
    pub retry_failures: bool,
    /// Extra time before a batch's first case (a guest's boot).
    pub startup: Duration,
    /// Each batch gets a directory under here (dEQP's logs, the tests' stderr).
    pub scratch: PathBuf,
}

/// Counts and the terminal line that shows them.
struct Progress {
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    tty: bool,
    start: Instant,
}

impl Progress {
    fn case_done(&self, failed: bool) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let fails = self
            .failed
            .fetch_add(usize::from(failed), Ordering::Relaxed)
            + usize::from(failed);
        let secs = self.start.elapsed().as_secs_f64();
        let line = format!(
            "conformance: {done}/{} cases, {fails} failing, {:.0} s, {:.1} cases/min",
            self.total,
            secs,
            done as f64 * 60.0 / secs.max(1e-3)
        );
        if self.tty {
            eprint!("\r{line}   ");
            if done == self.total {
                eprintln!();
            }
        } else if done == self.total || done.is_multiple_of((self.total / 10).max(1)) {
            eprintln!("{line}");
        }
    }
}

/// How one process ended.
struct Ended {
    status: Option<ExitStatus>,
    timed_out: bool,
    last_line: String,
}

/// Runs `cases` in one process; returns their results and the cases it never reached. `seen`
/// hears of each result as it comes (a guest's batch is the whole suite: progress is per case).
fn run_batch(
    suite: &Suite,
    target: &Target,
    cfg: &RunConfig,
    cases: &[String],
    batch: usize,
    seen: &dyn Fn(&CaseResult),
) -> (Vec<CaseResult>, Vec<String>) {
    let fail_all = |why: String| {
        let r = cases
            .iter()
            .map(|name| CaseResult {
                name: name.clone(),
                status: Status::Fail,
                duration: Duration::ZERO,
                detail: why.clone(),
            })
            .collect::<Vec<_>>();
        r.iter().for_each(seen);
        (r, Vec::new())
    };
    if let Some(r) = &target.renderer {
        if let Err(e) = r.ensure_running() {
            return fail_all(e.to_string());
        }
    }
    let scratch = cfg.scratch.join(format!("batch-{batch}"));
    let started = std::fs::create_dir_all(&scratch)
        .map_err(ConformanceError::io(&scratch))
        .and_then(|()| suite.command(cases, &scratch))
        .and_then(|c| match &target.guest {
            Some(vm) => vm.wrap(&c),
            None => Ok(c),
        })
        .and_then(|mut c| {
            let stderr = std::fs::File::create(scratch.join("stderr.txt"))
                .map_err(ConformanceError::io(&scratch))?;
            // A group of its own, so a hang is ended with every process the test started.
            c.process_group(0)
                .envs(target.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .map_err(ConformanceError::io(c.get_program()))
        });
    let mut child = match started {
        Ok(c) => c,
        Err(e) => return fail_all(format!("cannot start: {e}")),
    };
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = CaseLog::default();
    let mut results = Vec::new();
    let mut case_start = Instant::now();
    let mut deadline = case_start + cfg.startup + cfg.timeout;
    let mut ended = Ended {
        status: None,
        timed_out: false,
        last_line: String::new(),
    };
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if suite.reports_per_case() {
                    if suite.parse_line(&mut log, &line) {
                        case_start = Instant::now();
                        deadline = case_start + cfg.timeout;
                    }
                    for (name, status, detail) in log.finished.drain(..) {
                        let r = CaseResult {
                            name,
                            status,
                            duration: case_start.elapsed(),
                            detail,
                        };
                        seen(&r);
                        results.push(r);
                    }
                } else if !line.trim().is_empty() {
                    ended.last_line = line;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                ended.timed_out = true;
                kill_group(&mut child);
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    ended.status = child.wait().ok();
    // Whatever the test left running in its group goes too (and lets go of the pipe).
    kill_group(&mut child);
    let _ = reader.join();
    let live = results.len();
    let (results, leftover) = settle(suite, cases, results, log.running, ended, case_start);
    results[live..].iter().for_each(seen);
    (results, leftover)
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals the process group this runner created for the test (process_group(0)
        // made the child its leader); no memory is involved.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
}

/// Turns how a batch process ended into results for every case it covered.
fn settle(
    suite: &Suite,
    cases: &[String],
    mut results: Vec<CaseResult>,
    running: Option<String>,
    ended: Ended,
    case_start: Instant,
) -> (Vec<CaseResult>, Vec<String>) {
    let abnormal = match ended.status {
        Some(s) if ended.timed_out => format!("no progress within the timeout ({s})"),
        Some(s) if s.code().is_none() => format!("killed by {s}"),
        Some(s) => format!("exited: {s}"),
        None => "could not be waited for".into(),
    };
    let bad_end = if ended.timed_out {
        Status::Timeout
    } else {
        Status::Crash
    };
    if !suite.reports_per_case() {
        let status = match ended.status {
            _ if ended.timed_out => Status::Timeout,
            Some(s) if s.success() => Status::Pass,
            Some(s) if s.code().is_some() => Status::Fail,
            _ => Status::Crash,
        };
        let detail = if status == Status::Pass || ended.status.is_some_and(|s| s.code().is_some()) {
            ended.last_line
        } else {
            format!("{abnormal}; last output: {}", ended.last_line)
        };
        let r = cases.iter().map(|name| CaseResult {
            name: name.clone(),
            status,
            duration: case_start.elapsed(),
            detail: detail.clone(),
        });
        return (r.collect(), Vec::new());
    }
    let clean = !ended.timed_out && ended.status.is_some_and(|s| s.success());
    if let Some(name) = &running {
        results.push(CaseResult {
            name: name.clone(),
            status: if clean { Status::Fail } else { bad_end },
            duration: case_start.elapsed(),
            detail: abnormal.clone(),
        });
    }
    let reached: std::collections::HashSet<&str> =
        results.iter().map(|r| r.name.as_str()).collect();
    let unreached: Vec<String> = cases
        .iter()
        .filter(|c| !reached.contains(c.as_str()))
        .cloned()
        .collect();
    if running.is_some() || !clean {
        // The process went down under a case: the rest runs in a new process.
        return (results, unreached);
    }
    // A clean exit that left cases without results: dEQP did not know them.
    let missing = unreached.into_iter().map(|name| CaseResult {
        name,
        status: Status::Fail,
        duration: Duration::ZERO,
        detail: "no result from the test program".into(),
    });
    results.extend(missing);
    (results, Vec::new())
}

/// Runs every case of `suite` not skipped by `expectations` (and matched by `include`).
pub fn run(
    suite: &Suite,
    target: &Target,
    expectations: &Expectations,
    cfg: &RunConfig,
    include: Option<&regex::Regex>,
) -> Result<Vec<CaseResult>, ConformanceError> {
    let all = suite.cases()?;
    let selected: Vec<String> = all
        .into_iter()
        .filter(|c| include.is_none_or(|r| r.is_match(c)))
        .collect();
    let (skipped, to_run): (Vec<String>, Vec<String>) = selected
        .iter()
        .cloned()
        .partition(|c| expectations.skips(c));
    info!(
        suite = suite.name(),
        target = target.name,
        cases = to_run.len(),
        skipped = skipped.len(),
        jobs = cfg.jobs,
        "conformance run"
    );
    let progress = Progress {
        total: to_run.len(),
        done: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        // SAFETY: isatty only inspects a file descriptor number.
        tty: unsafe { libc::isatty(2) } == 1,
        start: Instant::now(),
    };
    let queue: Mutex<VecDeque<Vec<String>>> = Mutex::new(
        to_run
            .chunks(target.batch_size(suite).max(1))
            .map(<[String]>::to_vec)
            .collect(),
    );
    let outstanding = AtomicUsize::new(queue.lock().unwrap().len());
    let batches = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.max(1) {
            s.spawn(|| {
                while outstanding.load(Ordering::Acquire) > 0 {
                    let Some(batch) = queue.lock().unwrap().pop_front() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let n = batches.fetch_add(1, Ordering::Relaxed);
                    // Failing so far: before the retries that may make some a Flake.
                    let seen = |r: &CaseResult| {
                        progress.case_done(expectations.classify(&r.name, r.status).is_unexpected())
                    };
                    let (mut done, leftover) = run_batch(suite, target, cfg, &batch, n, &seen);
                    for r in &mut done {
                        r.status = expectations.classify(&r.name, r.status);
                        if cfg.retry_failures && r.status.is_failure() {
                            retry(suite, target, cfg, &batches, r);
                        }
                    }
                    results.lock().unwrap().extend(done);
                    if !leftover.is_empty() {
                        outstanding.fetch_add(1, Ordering::AcqRel);
                        queue.lock().unwrap().push_back(leftover);
                    }
                    outstanding.fetch_sub(1, Ordering::AcqRel);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.extend(skipped.into_iter().map(|name| CaseResult {
        name,
        status: Status::Skip,
        duration: Duration::ZERO,
        detail: "skipped by the skips list".into(),
    }));
    let order: std::collections::HashMap<&str, usize> = selected
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    results.sort_by_key(|r| order.get(r.name.as_str()).copied().unwrap_or(usize::MAX));
    Ok(results)
}

/// Runs a failed case once more on its own; a pass makes it a Flake.
fn retry(
    suite: &Suite,
    target: &Target,
    cfg: &RunConfig,
    batches: &AtomicUsize,
    r: &mut CaseResult,
) {
    let n = batches.fetch_add(1, Ordering::Relaxed);
    let (again, _) = run_batch(
        suite,
        target,
        cfg,
        std::slice::from_ref(&r.name),
        n,
        &|_| {},
    );
    if again
        .iter()
        .any(|a| a.name == r.name && a.status == Status::Pass)
    {
        r.status = Status::Flake;
        r.detail = format!("passed when run again; first run: {}", r.detail);
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
