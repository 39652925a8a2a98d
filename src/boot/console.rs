//! Judging a boot by its console, a line at a time as the VM writes it: the `expect`
//! patterns must appear in order (each found after the one before), no `fail_on` pattern
//! may appear, and how far the boot got (firmware, kernel, init, containers) is known at
//! every moment, for a timeout's message.

use std::collections::VecDeque;
use std::time::Duration;

use regex::Regex;

/// How many console lines a failure shows.
pub const TAIL_LINES: usize = 40;

/// What the console says so far.
#[derive(Debug)]
pub struct Judge {
    expect: Vec<Regex>,
    fail_on: Vec<Regex>,
    /// When each expected pattern matched, in order.
    matched: Vec<Duration>,
    tail: VecDeque<String>,
    stage: Stage,
    containers: Vec<String>,
}

/// How far a boot got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Nothing from the kernel yet: the firmware or the boot loader.
    Firmware,
    /// The kernel printed its banner.
    Kernel,
    /// The kernel started init.
    Init,
}

/// What a line did to the judgement.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep reading.
    Going,
    /// Every expected pattern was seen.
    Passed,
    /// A `fail_on` pattern matched this line.
    Failed { pattern: String, line: String },
}

impl Judge {
    pub fn new(expect: Vec<Regex>, fail_on: Vec<Regex>) -> Judge {
        Judge {
            expect,
            fail_on,
            matched: Vec::new(),
            tail: VecDeque::with_capacity(TAIL_LINES),
            stage: Stage::Firmware,
            containers: Vec::new(),
        }
    }

    /// Takes one console line, seen `at` since the VM started.
    pub fn line(&mut self, line: &str, at: Duration) -> Verdict {
        let line = without_escapes(line.trim_end_matches(['\r', '\n']));
        let line = line.as_str();
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
        if line.contains("Linux version ") {
            self.stage = self.stage.max(Stage::Kernel);
        }
        if line.contains("Run /init as init process") || line.contains("Run /sbin/init as init process") {
            self.stage = self.stage.max(Stage::Init);
        }
        if let Some(container) = started_container(line) {
            self.containers.push(container);
        }
        if let Some(pattern) = self.fail_on.iter().find(|pattern| pattern.is_match(line)) {
            return Verdict::Failed { pattern: pattern.as_str().to_string(), line: line.to_string() };
        }
        // Several expected patterns may match one line, in order.
        while let Some(pattern) = self.expect.get(self.matched.len()) {
            if !pattern.is_match(line) {
                break;
            }
            self.matched.push(at);
        }
        if self.matched.len() == self.expect.len() {
            Verdict::Passed
        } else {
            Verdict::Going
        }
    }

    /// Each expected pattern with when it matched (`None`: not yet).
    pub fn matches(&self) -> Vec<(&str, Option<Duration>)> {
        self.expect
            .iter()
            .enumerate()
            .map(|(index, pattern)| (pattern.as_str(), self.matched.get(index).copied()))
            .collect()
    }

    /// The first expected pattern not seen yet.
    pub fn missing(&self) -> Option<&str> {
        self.expect.get(self.matched.len()).map(Regex::as_str)
    }

    /// The last [`TAIL_LINES`] lines.
    pub fn tail(&self) -> String {
        self.tail.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }

    /// How far the boot got, in words.
    pub fn progress(&self) -> String {
        let stage = match self.stage {
            Stage::Firmware => "the kernel never started (still in the firmware or boot loader)".to_string(),
            Stage::Kernel => "the kernel started but never ran init".to_string(),
            Stage::Init => "init ran".to_string(),
        };
        if self.containers.is_empty() {
            stage
        } else {
            format!("{stage}; containers started: {}", self.containers.join(", "))
        }
    }
}

/// `line` without terminal escape sequences (colours: `ESC [ 31 m`), which patterns and
/// messages should not have to spell.
fn without_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, then one final byte (@ to ~).
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The container a line says was started, as LinuxKit's init and resin's boot fixtures
/// say it (`starting service <name>`, `Starting onboot <name>`...).
fn started_container(line: &str) -> Option<String> {
    let lower = line.to_ascii_lowercase();
    for marker in ["starting service ", "starting onboot ", "starting container ", "running onboot "] {
        if let Some(at) = lower.find(marker) {
            let name = line[at + marker.len()..].split_whitespace().next()?;
            return Some(name.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_').to_string());
        }
    }
    None
}

/// What fails a boot unless the resource says otherwise: the kernel giving up, an initrd
/// the kernel could not unpack, init missing or dying, a container runtime's error.
pub const DEFAULT_FAIL_ON: [&str; 7] = [
    r"Kernel panic",
    r"Initramfs unpacking failed",
    r"Attempted to kill init",
    r"No working init found",
    r"Failed to execute /init",
    r"runc run failed",
    r"runc(\[\d+\])?: .*(error|Error|ERRO)",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(expect: &[&str]) -> Judge {
        let compile = |patterns: &[&str]| patterns.iter().map(|p| Regex::new(p).unwrap()).collect();
        Judge::new(compile(expect), compile(&DEFAULT_FAIL_ON))
    }

    #[test]
    fn expected_patterns_match_in_order_with_their_times() {
        let mut judge = judge(&["RESIN-INIT-OK", "SERVICE-OK", "DONE"]);
        let second = Duration::from_secs(1);
        // A later pattern seen first does not count.
        assert_eq!(judge.line("SERVICE-OK early", second), Verdict::Going);
        assert_eq!(judge.line("[    0.000000] Linux version 6.1.0", second), Verdict::Going);
        assert_eq!(judge.line("RESIN-INIT-OK arch=x86_64\r\n", 2 * second), Verdict::Going);
        assert_eq!(judge.missing(), Some("SERVICE-OK"));
        // Two patterns in one line.
        assert_eq!(judge.line("SERVICE-OK then DONE", 3 * second), Verdict::Passed);
        let matches = judge.matches();
        assert_eq!(
            matches,
            vec![("RESIN-INIT-OK", Some(2 * second)), ("SERVICE-OK", Some(3 * second)), ("DONE", Some(3 * second))]
        );
    }

    #[test]
    fn a_fail_on_pattern_fails_at_once_and_progress_says_how_far_the_boot_got() {
        let mut judge = judge(&["never"]);
        assert!(judge.progress().contains("never started"));
        judge.line("Linux version 6.1.0-18-amd64", Duration::ZERO);
        assert!(judge.progress().contains("never ran init"));
        judge.line("[    1.2] Run /init as init process", Duration::ZERO);
        judge.line("starting service sshd", Duration::ZERO);
        assert_eq!(judge.progress(), "init ran; containers started: sshd");
        let verdict = judge.line("[    2.0] Kernel panic - not syncing: Attempted to kill init!", Duration::ZERO);
        assert_eq!(
            verdict,
            Verdict::Failed {
                pattern: "Kernel panic".into(),
                line: "[    2.0] Kernel panic - not syncing: Attempted to kill init!".into()
            }
        );
        assert!(judge.tail().ends_with("Attempted to kill init!"));
    }

    #[test]
    fn colours_are_not_part_of_a_line() {
        let mut judge = judge(&["^ERRO\\[0000\\] runc"]);
        let verdict = judge.line("\u{1b}[31mERRO\u{1b}[0m[0000] runc run failed: unable to start", Duration::ZERO);
        assert_eq!(
            verdict,
            Verdict::Failed {
                pattern: "runc run failed".into(),
                line: "ERRO[0000] runc run failed: unable to start".into()
            }
        );
        assert_eq!(without_escapes("a\u{1b}[1;32mb\u{1b}[0mc\u{1b}"), "abc");
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let mut judge = judge(&["x"]);
        for n in 0..100 {
            judge.line(&format!("line {n}"), Duration::ZERO);
        }
        let tail = judge.tail();
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.starts_with("line 60\n") && tail.ends_with("line 99"));
    }
}
