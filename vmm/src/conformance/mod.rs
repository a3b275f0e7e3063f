//! Conformance runs (`vgpu conformance`): a Vulkan test suite run case by case against a target
//! (our venus renderer over vtest, or the host's own driver for comparison), with per-test
//! timeouts, crash recovery, expectation files in the form Mesa CI keeps, and results as
//! deqp-runner writes them (CSV), as JUnit XML and as a summary table.
//!
//! Layout: [`suite`] (which cases exist and the process that runs a batch of them), [`caselog`]
//! (per-case progress in dEQP's and vk-conformance's output), [`expectations`] (fails, flakes, skips), [`guest`] (a VM per batch), [`runner`] (parallel
//! workers, timeouts, the renderer's restarts, retries of failures) and [`report`] (CSV, JUnit,
//! summary).

pub mod caselog;
pub mod expectations;
pub mod guest;
pub mod report;
pub mod runner;
pub mod suite;

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong around a conformance run (test failures are results, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}:{line}: {why}", path.display())]
    Expectations {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("the renderer did not come up: {0}")]
    Renderer(String),
    #[error("{0}")]
    Suite(String),
}

impl ConformanceError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |err| ConformanceError::Io { path, err }
    }
}

/// A case's outcome, spelt as deqp-runner spells it in its CSV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Fail,
    Skip,
    Crash,
    Timeout,
    /// Failed, but the flakes list names it or it passed when run again.
    Flake,
    /// Failed as the fails list says it does.
    ExpectedFail,
    /// The fails list says it fails, and it passed: a new pass, to be taken off the list.
    UnexpectedPass,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Pass,
        Status::Fail,
        Status::Skip,
        Status::Crash,
        Status::Timeout,
        Status::Flake,
        Status::ExpectedFail,
        Status::UnexpectedPass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "Pass",
            Status::Fail => "Fail",
            Status::Skip => "Skip",
            Status::Crash => "Crash",
            Status::Timeout => "Timeout",
            Status::Flake => "Flake",
            Status::ExpectedFail => "ExpectedFail",
            Status::UnexpectedPass => "UnexpectedPass",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A failing outcome of the test itself (before expectations are applied).
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Crash | Status::Timeout)
    }

    /// An outcome that makes the run fail: a new failure or a new pass.
    pub fn is_unexpected(self) -> bool {
        self.is_failure() || self == Status::UnexpectedPass
    }
}

/// One case's result.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    pub name: String,
    pub status: Status,
    pub duration: Duration,
    /// What the test said about itself (its last line of output, or why it was stopped).
    pub detail: String,
}
