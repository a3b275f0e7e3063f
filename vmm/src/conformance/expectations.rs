//! Expectation files in the form Mesa CI keeps them per driver (`venus-fails.txt`, ...):
//! fails list `test,Status` lines (the failure the test is known to have), flakes and skips
//! list one regular expression per line matched against the whole test name. `#` starts a
//! comment; blank lines are ignored.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

use super::{ConformanceError, Status};

#[derive(Debug, Default)]
pub struct Expectations {
    fails: HashMap<String, Status>,
    flakes: Vec<Regex>,
    skips: Vec<Regex>,
}

/// The lines of `path` that say something: (line number, text).
fn lines(path: &Path) -> Result<Vec<(usize, String)>, ConformanceError> {
    let text = std::fs::read_to_string(path).map_err(ConformanceError::io(path))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim().to_string()))
        .filter(|(_, l)| !l.is_empty())
        .collect())
}

fn regexes(path: &Path) -> Result<Vec<Regex>, ConformanceError> {
    lines(path)?
        .into_iter()
        .map(|(line, l)| {
            Regex::new(&format!("^(?:{l})$")).map_err(|e| ConformanceError::Expectations {
                path: path.into(),
                line,
                why: e.to_string(),
            })
        })
        .collect()
}

impl Expectations {
    pub fn load(
        fails: Option<&Path>,
        flakes: Option<&Path>,
        skips: Option<&Path>,
    ) -> Result<Self, ConformanceError> {
        let mut e = Expectations::default();
        if let Some(path) = fails {
            for (line, l) in lines(path)? {
                let bad = |why: &str| ConformanceError::Expectations {
                    path: path.into(),
                    line,
                    why: why.to_string(),
                };
                let (name, status) = l.rsplit_once(',').ok_or_else(|| bad("want test,Status"))?;
                let status = Status::parse(status.trim())
                    .filter(|s| s.is_failure())
                    .ok_or_else(|| bad("status must be Fail, Crash or Timeout"))?;
                e.fails.insert(name.trim().to_string(), status);
            }
        }
        if let Some(path) = flakes {
            e.flakes = regexes(path)?;
        }
        if let Some(path) = skips {
            e.skips = regexes(path)?;
        }
        Ok(e)
    }

    pub fn skips(&self, name: &str) -> bool {
        self.skips.iter().any(|r| r.is_match(name))
    }

    pub fn is_flaky(&self, name: &str) -> bool {
        self.flakes.iter().any(|r| r.is_match(name))
    }

    /// The outcome of `raw` for test `name` once the lists are applied.
    pub fn classify(&self, name: &str, raw: Status) -> Status {
        match (raw.is_failure(), self.fails.get(name)) {
            (true, Some(&known)) if known == raw => Status::ExpectedFail,
            (true, _) if self.is_flaky(name) => Status::Flake,
            (false, Some(_)) if raw == Status::Pass => Status::UnexpectedPass,
            _ => raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn lists_decide_expected_failures_new_passes_flakes_and_skips() {
        let dir = std::env::temp_dir().join(format!("vgpu-expect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fails = file(
            &dir,
            "fails.txt",
            "# known\nvk.a,Fail\nvk.b,Crash  # since 25.0\n\n",
        );
        let flakes = file(&dir, "flakes.txt", "vk\\.flaky\\..*\n");
        let skips = file(&dir, "skips.txt", "vk\\.slow.*\n");
        let e = Expectations::load(Some(&fails), Some(&flakes), Some(&skips)).unwrap();
        assert_eq!(e.classify("vk.a", Status::Fail), Status::ExpectedFail);
        assert_eq!(
            e.classify("vk.b", Status::Fail),
            Status::Fail,
            "not the known failure"
        );
        assert_eq!(e.classify("vk.b", Status::Crash), Status::ExpectedFail);
        assert_eq!(e.classify("vk.a", Status::Pass), Status::UnexpectedPass);
        assert_eq!(e.classify("vk.a", Status::Skip), Status::Skip);
        assert_eq!(e.classify("vk.c", Status::Timeout), Status::Timeout);
        assert_eq!(e.classify("vk.flaky.x", Status::Fail), Status::Flake);
        assert_eq!(e.classify("vk.c", Status::Pass), Status::Pass);
        assert!(e.skips("vk.slow_one") && !e.skips("xvk.slow") && !e.skips("vk.a"));

        let bad = file(&dir, "bad.txt", "vk.a,Pass\n");
        let err = Expectations::load(Some(&bad), None, None).unwrap_err();
        assert!(err.to_string().contains("bad.txt:1"), "{err}");
        let bad_re = file(&dir, "bad_re.txt", "vk.(\n");
        assert!(Expectations::load(None, Some(&bad_re), None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
