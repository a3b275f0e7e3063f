//! What a run leaves: `results.csv` as deqp-runner writes it (`test,status,duration`),
//! `failures.csv` (the unexpected results only), `junit.xml`, and the summary table with the new
//! failures and the new passes listed apart.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::{CaseResult, ConformanceError, Status};

fn csv_line(r: &CaseResult) -> String {
    format!(
        "{},{},{:.3}\n",
        r.name,
        r.status.as_str(),
        r.duration.as_secs_f64()
    )
}

pub fn csv(results: &[CaseResult]) -> String {
    results.iter().map(csv_line).collect()
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one testcase per case; unexpected results are failures, skips are skipped.
pub fn junit(suite: &str, results: &[CaseResult]) -> String {
    let failures = results.iter().filter(|r| r.status.is_unexpected()).count();
    let skipped = results.iter().filter(|r| r.status == Status::Skip).count();
    let time: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        xml_escape(suite),
        results.len()
    );
    for r in results {
        let (class, name) = r.name.rsplit_once('.').unwrap_or((suite, &r.name));
        let _ = write!(
            x,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(class),
            xml_escape(name),
            r.duration.as_secs_f64()
        );
        let detail = xml_escape(&r.detail);
        let status = r.status.as_str();
        if r.status.is_unexpected() {
            let _ = writeln!(
                x,
                "><failure type=\"{status}\" message=\"{status}: {detail}\"/></testcase>"
            );
        } else if r.status == Status::Skip {
            let _ = writeln!(x, "><skipped message=\"{detail}\"/></testcase>");
        } else {
            let _ = writeln!(x, "><system-out>{status}: {detail}</system-out></testcase>");
        }
    }
    x.push_str("</testsuite></testsuites>\n");
    x
}

/// The summary: a count per status, throughput, then new failures and new passes by name.
pub fn summary(results: &[CaseResult], elapsed: Duration, jobs: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| status | cases |\n| --- | --- |");
    for status in Status::ALL {
        let n = results.iter().filter(|r| r.status == status).count();
        if n > 0 {
            let _ = writeln!(s, "| {} | {n} |", status.as_str());
        }
    }
    let ran = results.iter().filter(|r| r.status != Status::Skip).count();
    let minutes = elapsed.as_secs_f64() / 60.0;
    let _ = writeln!(
        s,
        "| total | {} |\n\n{ran} cases run in {:.1} s with {jobs} parallel clients: {:.1} cases/min",
        results.len(),
        elapsed.as_secs_f64(),
        ran as f64 / minutes.max(1e-9)
    );
    let list = |s: &mut String, title: &str, keep: &dyn Fn(Status) -> bool| {
        let picked: Vec<&CaseResult> = results.iter().filter(|r| keep(r.status)).collect();
        if !picked.is_empty() {
            let _ = writeln!(s, "\n{title} ({}):", picked.len());
            for r in picked {
                let _ = writeln!(s, "  {},{}  {}", r.name, r.status.as_str(), r.detail);
            }
        }
    };
    list(&mut s, "New failures", &|st| st.is_failure());
    list(&mut s, "New passes (take them off the fails list)", &|st| {
        st == Status::UnexpectedPass
    });
    list(&mut s, "Flakes", &|st| st == Status::Flake);
    s
}

/// Writes results.csv, failures.csv and junit.xml into `dir`.
pub fn write_all(dir: &Path, suite: &str, results: &[CaseResult]) -> Result<(), ConformanceError> {
    std::fs::create_dir_all(dir).map_err(ConformanceError::io(dir))?;
    let unexpected: Vec<CaseResult> = results
        .iter()
        .filter(|r| r.status.is_unexpected())
        .cloned()
        .collect();
    for (name, text) in [
        ("results.csv", csv(results)),
        ("failures.csv", csv(&unexpected)),
        ("junit.xml", junit(suite, results)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(ConformanceError::io(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, status: Status, ms: u64, detail: &str) -> CaseResult {
        CaseResult {
            name: name.into(),
            status,
            duration: Duration::from_millis(ms),
            detail: detail.into(),
        }
    }

    #[test]
    fn csv_junit_and_summary_say_what_happened() {
        let results = [
            r("vk.a", Status::Pass, 1500, "ok"),
            r("vk.b", Status::Fail, 20, "want <1> & got \"2\""),
            r("vk.c", Status::UnexpectedPass, 5, ""),
            r("vk.d", Status::Skip, 0, "skipped by the skips list"),
            r("vk.e", Status::Flake, 7, "passed when run again"),
        ];
        assert_eq!(
            csv(&results[..2]),
            "vk.a,Pass,1.500\nvk.b,Fail,0.020\n",
            "deqp-runner's form"
        );
        let x = junit("builtin", &results);
        assert!(
            x.contains("tests=\"5\" failures=\"2\" skipped=\"1\""),
            "{x}"
        );
        assert!(x.contains("classname=\"vk\" name=\"b\""), "{x}");
        assert!(x.contains("want &lt;1&gt; &amp; got &quot;2&quot;"), "{x}");
        assert!(!x.contains("want <1>"), "escaped");
        let s = summary(&results, Duration::from_secs(30), 2);
        assert!(
            s.contains("| Fail | 1 |") && s.contains("| total | 5 |"),
            "{s}"
        );
        assert!(
            s.contains("4 cases run in 30.0 s with 2 parallel clients: 8.0 cases/min"),
            "{s}"
        );
        let new_failures = s.split("New failures (1):").nth(1).unwrap();
        assert!(new_failures.contains("vk.b,Fail"), "{s}");
        assert!(s.contains("New passes (take them off the fails list) (1):\n  vk.c,UnexpectedPass"));
        assert!(s.contains("Flakes (1):\n  vk.e,Flake"));
    }
}
