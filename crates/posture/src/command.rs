//! Running the OS's own read-only tools (`nft`, `fdesetup`, `manage-bde`, ...) with a time limit,
//! and I/O errors as short phrases for reasons.
//!
//! This is the only place the crate starts processes. A probe either takes what a tool printed
//! and hands it to a pure parser, or reports unknown with the reason the tool could not answer.

use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A tool gets `POLLS` × `POLL` to answer before it is killed.
const POLL: Duration = Duration::from_millis(50);
const POLLS: u32 = 100;

/// What a tool printed, and its exit status as the OS words it when that was not success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    pub(crate) failed: Option<String>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// Standard output followed by standard error: some tools (`sysadminctl`, PowerShell's
    /// errors) say what matters on the latter.
    pub(crate) fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the first of `candidates` that exists and returns what it printed; an error only when
/// none could be started or it did not finish in time.
pub(crate) fn output(candidates: &[&str], args: &[&str]) -> Result<Output, String> {
    let name = candidates.first().copied().unwrap_or_default();
    for program in candidates {
        let spawned = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot run {name} ({})", describe(&e))),
        };
        // Drain both pipes on their own threads, so a large output cannot fill a pipe and stall.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut bytes);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let mut status = None;
        for _ in 0..POLLS {
            match child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => return Err(format!("cannot wait for {name} ({})", describe(&e))),
            }
        }
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{name} did not answer within {} seconds",
                (POLL * POLLS).as_secs()
            ));
        };
        let stdout = out
            .join()
            .map_err(|_| format!("reading the output of {name} failed"))?;
        let stderr = err.join().unwrap_or_default();
        return Ok(Output {
            failed: (!status.success()).then(|| status.to_string()),
            stdout,
            stderr,
        });
    }
    Err(format!("{name} is not installed"))
}

/// [`output`], where only a successful run counts: its standard output, or why it failed (the
/// first line of what it printed to standard error).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn run(candidates: &[&str], args: &[&str]) -> Result<String, String> {
    let name = candidates.first().copied().unwrap_or_default();
    let out = output(candidates, args)?;
    if let Some(status) = &out.failed {
        let why: String = out
            .stderr
            .lines()
            .next()
            .unwrap_or("no message")
            .chars()
            .take(200)
            .collect();
        return Err(format!("{name} failed ({status}): {}", why.trim()));
    }
    Ok(out.stdout)
}

/// What a tool says through `parse`: the tool's text (standard output, then standard error)
/// goes to the parser even when it exited with an error, since some tools explain a refusal
/// there; unknown with the reason when it could not be run or printed nothing.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) fn read_with<T>(
    candidates: &[&str],
    args: &[&str],
    parse: impl FnOnce(&str) -> keywarden_protocol::Observed<T>,
) -> keywarden_protocol::Observed<T> {
    let name = candidates.first().copied().unwrap_or_default();
    match output(candidates, args) {
        Err(reason) => keywarden_protocol::Observed::unknown(reason),
        Ok(out) if out.text().trim().is_empty() => keywarden_protocol::Observed::unknown(format!(
            "{name} printed nothing ({})",
            out.failed.as_deref().unwrap_or("exit status: 0")
        )),
        Ok(out) => parse(&out.text()),
    }
}

/// An I/O error as a short lowercase phrase for a reason string.
pub(crate) fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "it does not exist".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string().to_lowercase(),
    }
}

/// The first non-blank line of `text`, shortened, to quote in a reason.
pub(crate) fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        None => "nothing".to_owned(),
        Some(l) if l.chars().count() > 120 => {
            format!("'{}…'", l.chars().take(120).collect::<String>())
        }
        Some(l) => format!("'{l}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_reported_by_name() {
        assert_eq!(
            run(&["keywarden-no-such-tool"], &[]),
            Err("keywarden-no-such-tool is not installed".to_owned())
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_tool_keeps_what_it_printed() {
        let out = output(&["sh"], &["-c", "echo out; echo err >&2; exit 3"]).expect("sh runs");
        assert_eq!(out.failed.as_deref(), Some("exit status: 3"));
        assert_eq!(out.text(), "out\nerr\n");
        assert_eq!(
            run(&["sh"], &["-c", "echo err >&2; exit 3"]),
            Err("sh failed (exit status: 3): err".to_owned())
        );
    }

    #[test]
    fn quoted_lines_are_short() {
        assert_eq!(
            first_line("\n  FileVault is On.\nmore"),
            "'FileVault is On.'"
        );
        assert_eq!(first_line(" \n"), "nothing");
        assert_eq!(first_line(&"x".repeat(200)).chars().count(), 123);
    }
}
