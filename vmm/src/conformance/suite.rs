//! The suites `vgpu conformance` runs: which cases exist and the process that runs a batch.
//!
//! * built-in: the project's `vk-conformance` checks (`--check NAME`), one process per check on
//!   the host, all of them in one VM on a guest target;
//! * ncnn, wgpu: the renderer issue's framework checks (`tests/clients/*.py`), one case each;
//! * dEQP: a VK-GL-CTS build the user made (`deqp-vk`), batches of cases from a case list, its
//!   console output read as deqp-runner reads it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::caselog::CaseLog;
use super::ConformanceError;

#[derive(Clone, Debug)]
pub enum Suite {
    /// `vk-conformance`: cases are its checks, named `vk-conformance.<check>`.
    Builtin { program: PathBuf },
    /// A Python client script, one case `<case>` that passes when the script exits 0.
    Python {
        case: String,
        python: PathBuf,
        script: PathBuf,
    },
    /// dEQP (`deqp-vk`) with dEQP's command line; cases from a case list file.
    Deqp {
        program: PathBuf,
        caselist: PathBuf,
        args: Vec<String>,
    },
}

const BUILTIN_PREFIX: &str = "vk-conformance.";

/// Cases per dEQP process: fewer restarts than one per case, little lost to a crash.
pub const DEQP_BATCH: usize = 50;

impl Suite {
    pub fn name(&self) -> &str {
        match self {
            Suite::Builtin { .. } => "builtin",
            Suite::Python { case, .. } => case.split('.').next().unwrap_or(case),
            Suite::Deqp { .. } => "deqp",
        }
    }

    /// Every case, in run order.
    pub fn cases(&self) -> Result<Vec<String>, ConformanceError> {
        match self {
            Suite::Builtin { program } => {
                let out = Command::new(program)
                    .arg("--list")
                    .output()
                    .map_err(ConformanceError::io(program))?;
                if !out.status.success() {
                    return Err(ConformanceError::Suite(format!(
                        "{} --list failed: {}",
                        program.display(),
                        out.status
                    )));
                }
                Ok(String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("{BUILTIN_PREFIX}{l}"))
                    .collect())
            }
            Suite::Python { case, .. } => Ok(vec![case.clone()]),
            Suite::Deqp { caselist, .. } => {
                let text =
                    std::fs::read_to_string(caselist).map_err(ConformanceError::io(caselist))?;
                Ok(text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect())
            }
        }
    }

    /// How many cases one process runs.
    pub fn batch_size(&self) -> usize {
        match self {
            Suite::Deqp { .. } => DEQP_BATCH,
            _ => 1,
        }
    }

    /// Reads the program's output for per-case results (the Python clients pass by exit status).
    pub fn reports_per_case(&self) -> bool {
        !matches!(self, Suite::Python { .. })
    }

    /// Takes a line of a batch's output; true when it started a case.
    pub fn parse_line(&self, log: &mut CaseLog, line: &str) -> bool {
        match self {
            Suite::Builtin { .. } => log.check_line(BUILTIN_PREFIX, line),
            Suite::Deqp { .. } => log.deqp_line(line),
            Suite::Python { .. } => false,
        }
    }

    /// The process that runs `cases`; `scratch` is a directory of this batch's own.
    pub fn command(&self, cases: &[String], scratch: &Path) -> Result<Command, ConformanceError> {
        Ok(match self {
            Suite::Builtin { program } => {
                let mut c = Command::new(program);
                for case in cases {
                    c.arg("--check")
                        .arg(case.strip_prefix(BUILTIN_PREFIX).unwrap_or(case));
                }
                c
            }
            Suite::Python { python, script, .. } => {
                let mut c = Command::new(python);
                c.arg(script);
                c
            }
            Suite::Deqp { program, args, .. } => {
                let list = scratch.join("caselist.txt");
                std::fs::write(&list, cases.join("\n") + "\n")
                    .map_err(ConformanceError::io(&list))?;
                let mut c = Command::new(program);
                let mut arg = |a: &str, p: &Path| {
                    let mut s = OsString::from(a);
                    s.push(p);
                    c.arg(s);
                };
                arg("--deqp-caselist-file=", &list);
                arg("--deqp-log-filename=", &scratch.join("TestResults.qpa"));
                c.args([
                    "--deqp-log-images=disable",
                    "--deqp-log-shader-sources=disable",
                    "--deqp-surface-type=pbuffer",
                    "--deqp-shadercache=disable",
                ]);
                c.args(args);
                // dEQP finds its data (vulkan/, shaders) relative to the working directory.
                if let Some(dir) = program.parent() {
                    c.current_dir(dir);
                }
                c
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deqp_batches_get_a_caselist_and_the_users_arguments() {
        let dir = std::env::temp_dir().join(format!("vgpu-suite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let caselist = dir.join("list.txt");
        std::fs::write(&caselist, "# mustpass\ndEQP-VK.a\n\n dEQP-VK.b \n").unwrap();
        let suite = Suite::Deqp {
            program: "/opt/cts/external/vulkancts/modules/vulkan/deqp-vk".into(),
            caselist,
            args: vec!["--deqp-vk-device-id=1".into()],
        };
        let cases = suite.cases().unwrap();
        assert_eq!(cases, ["dEQP-VK.a", "dEQP-VK.b"]);
        let c = suite.command(&cases, &dir).unwrap();
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let list = format!(
            "--deqp-caselist-file={}",
            dir.join("caselist.txt").display()
        );
        assert!(args.contains(&list), "{args:?}");
        assert_eq!(args.last().unwrap(), "--deqp-vk-device-id=1");
        assert_eq!(
            std::fs::read_to_string(dir.join("caselist.txt")).unwrap(),
            "dEQP-VK.a\ndEQP-VK.b\n"
        );
        assert_eq!(
            c.get_current_dir(),
            Some(Path::new("/opt/cts/external/vulkancts/modules/vulkan"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
