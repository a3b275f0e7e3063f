//! Per-case progress in a test program's console output, as two kinds of program print it:
//!
//! * dEQP: `Test case 'NAME'..` when a case starts, then an indented status line (`  Pass
//!   (detail)`, `  Fail (detail)`, `  NotSupported (detail)`, ...) when it ends;
//! * vk-conformance: `CHECK-START NAME`, then `CHECK NAME PASS|FAIL|SKIP detail`, anywhere in a
//!   line (a guest's serial console mixes them with kernel messages).

use super::Status;

/// What a test process printed so far.
#[derive(Debug, Default, PartialEq)]
pub struct CaseLog {
    /// Cases that finished, in order, with the program's detail text.
    pub finished: Vec<(String, Status, String)>,
    /// The case that started and has not finished (the one a crash or hang belongs to).
    pub running: Option<String>,
}

/// dEQP's result codes as deqp-runner maps them.
fn status_of(code: &str) -> Option<Status> {
    Some(match code {
        "Pass" | "QualityWarning" | "CompatibilityWarning" | "Warning" => Status::Pass,
        "Fail" | "InternalError" | "ResourceError" => Status::Fail,
        "NotSupported" => Status::Skip,
        "Crash" => Status::Crash,
        "Timeout" => Status::Timeout,
        _ => return None,
    })
}

impl CaseLog {
    /// Takes one line of vk-conformance's output (`prefix` names its cases here); true when it
    /// started a case.
    pub fn check_line(&mut self, prefix: &str, line: &str) -> bool {
        if let Some(i) = line.find("CHECK-START ") {
            let name = line[i + "CHECK-START ".len()..].trim();
            self.running = Some(format!("{prefix}{name}"));
            return true;
        }
        let Some(i) = line.find("CHECK ") else {
            return false;
        };
        let mut words = line[i + "CHECK ".len()..].splitn(3, ' ');
        let (Some(name), Some(verdict)) = (words.next(), words.next()) else {
            return false;
        };
        let status = match verdict {
            "PASS" => Status::Pass,
            "FAIL" => Status::Fail,
            "SKIP" => Status::Skip,
            _ => return false,
        };
        let detail = words.next().unwrap_or("").trim().to_string();
        self.finished
            .push((format!("{prefix}{name}"), status, detail));
        self.running = None;
        false
    }

    /// Takes one line of dEQP's stdout; true when it started a case.
    pub fn deqp_line(&mut self, line: &str) -> bool {
        if let Some(rest) = line.strip_prefix("Test case '") {
            if let Some(name) = rest.strip_suffix("'..") {
                self.running = Some(name.to_string());
                return true;
            }
            return false;
        }
        let Some(name) = self.running.clone() else {
            return false;
        };
        let trimmed = line.trim_start();
        if trimmed.len() == line.len() {
            return false; // results are indented
        }
        let code = trimmed.split([' ', '(']).next().unwrap_or("");
        if let Some(status) = status_of(code) {
            let detail = trimmed[code.len()..].trim().trim_matches(['(', ')']);
            self.finished.push((name, status, detail.to_string()));
            self.running = None;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_and_their_results_are_read_from_deqp_output() {
        let out = "Writing test log into x.qpa\n\
            dEQP Core git-... (0x...) starting..\n\
            Test case 'dEQP-VK.api.smoke.create_sampler'..\n\
            \x20 Pass (Pass)\n\
            Test case 'dEQP-VK.api.smoke.triangle'..\n\
            \x20 Fail (Image comparison failed)\n\
            Test case 'dEQP-VK.wsi.xlib.surface'..\n\
            \x20 NotSupported (VK_KHR_xlib_surface not supported)\n\
            Test case 'dEQP-VK.api.copy'..\n\
            \x20 QualityWarning (slow)\n\
            Test case 'dEQP-VK.memory.huge'..\n\
            Pass not indented: ignored\n";
        let mut log = CaseLog::default();
        let started = out.lines().filter(|l| log.deqp_line(l)).count();
        assert_eq!(started, 5);
        let got: Vec<(&str, Status)> = log
            .finished
            .iter()
            .map(|(n, s, _)| (n.as_str(), *s))
            .collect();
        assert_eq!(
            got,
            [
                ("dEQP-VK.api.smoke.create_sampler", Status::Pass),
                ("dEQP-VK.api.smoke.triangle", Status::Fail),
                ("dEQP-VK.wsi.xlib.surface", Status::Skip),
                ("dEQP-VK.api.copy", Status::Pass),
            ]
        );
        assert_eq!(log.finished[1].2, "Image comparison failed");
        assert_eq!(log.running.as_deref(), Some("dEQP-VK.memory.huge"));
    }

    #[test]
    fn checks_are_read_from_vk_conformance_output_among_kernel_messages() {
        let out = "VGPU-RUN vk-conformance --check a\n\
            DEVICE Virtio-GPU Venus (llvmpipe)\n\
            CHECK-START compute\n\
            CHECK compute PASS 65536 words\n\
            [   12.5] virtio_gpu: something\n\
            VGPU-L2 3.2 vgpu CHECK-START render\n\
            VGPU-L2 3.9 vgpu CHECK render FAIL 12 pixels wrong\n\
            CHECK-START crashes\n";
        let mut log = CaseLog::default();
        let started = out.lines().filter(|l| log.check_line("vk.", l)).count();
        assert_eq!(started, 3);
        assert_eq!(
            log.finished,
            [
                ("vk.compute".into(), Status::Pass, "65536 words".into()),
                ("vk.render".into(), Status::Fail, "12 pixels wrong".into()),
            ]
        );
        assert_eq!(log.running.as_deref(), Some("vk.crashes"));
    }
}
