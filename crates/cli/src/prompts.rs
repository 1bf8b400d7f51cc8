//! Prompts at the terminal: touch notices, key choice and PIN entry.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::output::no_key_message;
use anyhow::Context as _;
use keywarden_agent::enrol::EnrolPrompts;
use keywarden_agent::keys::{KeyInfo, Prompt};
use keywarden_agent::{Agent, Error};

/// Tells the person at the terminal to touch a key.
pub(crate) struct TouchNotice;

impl Prompt for TouchNotice {
    fn touch(&self, key: &KeyInfo) {
        eprintln!("Waiting for a touch: {} [{}]", key.label, key.id);
    }
}

/// CTAP selection over every key present; returns the id of the one touched.
pub(crate) fn select_by_touch(agent: &Agent) -> anyhow::Result<String> {
    let ids: Vec<String> = agent.keys()?.into_iter().map(|k| k.id).collect();
    if ids.is_empty() {
        anyhow::bail!("{}", no_key_message());
    }
    eprintln!("Touch the key you want to use.");
    Ok(agent.select_by_touch(&ids, std::sync::Arc::new(TouchNotice))?)
}

/// Terminal prompts: numbered key choice, hidden PIN entry typed twice for a new PIN.
pub(crate) struct TerminalPrompts {
    pub(crate) pin_from_stdin: Option<String>,
    /// The new PIN from standard input, for a PIN change (`change-pin --pin-stdin`).
    pub(crate) new_pin_from_stdin: Option<String>,
}

impl Prompt for TerminalPrompts {
    fn touch(&self, key: &KeyInfo) {
        eprintln!("Touch your key now: {}", key.label);
    }
}

impl TerminalPrompts {
    fn read_hidden(&self, prompt: &str) -> keywarden_agent::Result<String> {
        if let Some(p) = &self.pin_from_stdin {
            return Ok(p.clone());
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::NeedsInput(
                "a PIN is needed but there is no terminal; pass --pin-stdin".into(),
            ));
        }
        rpassword::prompt_password(prompt).map_err(|_| Error::Cancelled)
    }

    /// A new PIN typed twice (once when it comes from standard input).
    fn read_new_pin(&self) -> keywarden_agent::Result<String> {
        let first = self.read_hidden("New PIN: ")?;
        if self.pin_from_stdin.is_none() {
            let again = self.read_hidden("New PIN again: ")?;
            if again != first {
                return Err(Error::PinRejected(
                    "the two PINs differ; nothing was changed".into(),
                ));
            }
        }
        Ok(first)
    }
}

impl EnrolPrompts for TerminalPrompts {
    fn choose_key(&self, keys: &[KeyInfo]) -> keywarden_agent::Result<usize> {
        eprintln!("Several keys are present. Which one do you want to enrol?");
        for (i, k) in keys.iter().enumerate() {
            eprintln!(
                "  {}) {} {} [{}]",
                i + 1,
                k.label,
                k.model.as_deref().unwrap_or(""),
                k.id
            );
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::NeedsInput(
                "several keys are present; choose one with --key".into(),
            ));
        }
        eprint!("number: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|_| Error::Cancelled)?;
        line.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=keys.len()).contains(n))
            .map(|n| n - 1)
            .ok_or(Error::Cancelled)
    }

    fn new_pin(&self, key: &KeyInfo, min_len: u32) -> keywarden_agent::Result<String> {
        eprintln!(
            "{} has no PIN yet. Choose one of at least {min_len} characters.",
            key.label
        );
        self.read_new_pin()
    }

    fn change_pin(
        &self,
        key: &KeyInfo,
        min_len: u32,
        retries: Option<u32>,
    ) -> keywarden_agent::Result<String> {
        if key.force_pin_change == Some(true) {
            eprintln!(
                "{} asks for a new PIN before it can be used (IT set it so, or its minimum PIN length was raised).",
                key.label
            );
        } else {
            eprintln!("Changing the PIN of {}.", key.label);
        }
        eprintln!(
            "Choose a new PIN of at least {min_len} characters, then type the current one{}.",
            retries.map_or(String::new(), |r| format!(
                " ({r} attempts left before the key locks)"
            ))
        );
        if self.pin_from_stdin.is_some() {
            return self.new_pin_from_stdin.clone().ok_or_else(|| {
                Error::NeedsInput(format!(
                    "{} needs a new PIN first: run `keywarden change-pin --key {}`",
                    key.label, key.id
                ))
            });
        }
        self.read_new_pin()
    }

    fn pin(
        &self,
        key: &KeyInfo,
        retries: Option<u32>,
        last_failed: bool,
    ) -> keywarden_agent::Result<String> {
        if last_failed && self.pin_from_stdin.is_some() {
            return Err(Error::PinRejected("wrong PIN".into()));
        }
        if let Some(r) = retries {
            if last_failed {
                eprintln!("Wrong PIN. {r} attempts left before the key locks.");
            }
            if r <= 3 {
                eprintln!(
                    "Careful: {r} PIN attempts left before {} locks for good.",
                    key.label
                );
            }
        }
        self.read_hidden(&format!("PIN for {}: ", key.label))
    }
}

/// Every line of standard input.
pub(crate) fn stdin_lines() -> anyhow::Result<Vec<String>> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
        .context("cannot read the PINs from stdin")?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// With `--pin-stdin`, two PINs from standard input: the first line for the key that proves
/// who you are, the next for the key to enrol (the first for both when there is one line).
pub(crate) fn two_pins(pin_stdin: bool) -> anyhow::Result<(Option<String>, Option<String>)> {
    if !pin_stdin {
        return Ok((None, None));
    }
    let mut lines = stdin_lines()?.into_iter();
    let first = lines.next().unwrap_or_default();
    let second = lines.next().unwrap_or_else(|| first.clone());
    Ok((Some(first), Some(second)))
}

/// Read one PIN: from the first line of stdin, or from the terminal.
pub(crate) fn read_pin(pin_stdin: bool) -> anyhow::Result<String> {
    if pin_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the PIN from stdin")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("PIN: ").context("cannot read the PIN")
    } else {
        anyhow::bail!("a PIN is needed but there is no terminal; pass --pin-stdin");
    }
}
