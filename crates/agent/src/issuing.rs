//! IT issuing station: enrol organisation-owned keys for people from a list, each with a random
//! PIN, and leave each key demanding a PIN change, so that its person sets their own before
//! it works (and their laptop's first use activates it with the service).
//!
//! A session opens with the staff member's own key (a fresh step-up, purpose `issue_keys`);
//! the service checks the list whole before any key is touched. Per key: the key must be blank
//! (no PIN); a PIN of at least 8 digits (and the population's minimum) is drawn from the
//! operating system's random source and set; the population's on-key policy (minimum PIN
//! length, alwaysUv) is put on the key; the credential is made for the person and verified and
//! bound by the service (as at every enrolment); then forceChangePin is set with
//! authenticatorConfig. The PIN goes to the caller only (for the PIN sheet): never to the
//! service, a log or the terminal.

use keywarden_keys::config::ConfigCommand;
use keywarden_keys::{KeyInfo, Prompt};
use keywarden_protocol::{
    EnrolBeginResponse, EnrolFinishResponse, IssueCeremonyRequest, IssueListEntry, IssuePerson,
    IssueSession, IssueSessionRequest, IssuedKeyActivated,
};

use crate::enrol::EnrolPrompts;
use crate::error::{Error, Result};
use crate::Agent;

/// The shortest PIN the station draws, whatever the population asks.
pub const MIN_ISSUED_PIN_DIGITS: u32 = 8;

/// A PIN the station drew for an issued key. Its `Debug` hides it; only [`IssuedPin::reveal`]
/// gives it, for the PIN sheet.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedPin(String);

impl IssuedPin {
    /// `digits` decimal digits from the operating system's random source (each digit drawn
    /// uniformly).
    pub fn random(digits: u32) -> IssuedPin {
        use rand::Rng as _;
        let mut rng = rand::rngs::OsRng;
        IssuedPin(
            (0..digits)
                .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
                .collect(),
        )
    }

    /// The PIN itself, for the sheet that carries it.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for IssuedPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedPin(hidden)")
    }
}

/// Read an issuing list: CSV with a header naming `user_name` and, optionally, `keys` (1 or
/// 2; `default_keys` when absent or empty). Blank lines are skipped. Every problem (a missing
/// or unknown column, a row with the wrong number of fields, a bad key count) is reported at
/// once, naming its line; nothing is returned then.
pub fn parse_csv(text: &str, default_keys: u32) -> Result<Vec<IssueListEntry>> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (u32::try_from(i + 1).unwrap_or(u32::MAX), l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(Error::IssuingList(
            "the list is empty: a CSV header `user_name[,keys]` and one row a person".into(),
        ));
    };
    let columns: Vec<String> = fields(header).iter().map(|c| c.to_lowercase()).collect();
    let mut problems = Vec::new();
    for c in &columns {
        if !matches!(c.as_str(), "user_name" | "keys") {
            problems.push(format!(
                "line {header_line}: unknown column {c:?} (the columns are user_name and, optionally, keys)"
            ));
        }
    }
    let user_col = columns.iter().position(|c| c == "user_name");
    if user_col.is_none() {
        problems.push(format!("line {header_line}: no user_name column"));
    }
    let keys_col = columns.iter().position(|c| c == "keys");
    let mut out = Vec::new();
    for (row, line) in lines {
        let f = fields(line);
        if f.len() != columns.len() {
            problems.push(format!(
                "line {row}: {} fields, the header has {}",
                f.len(),
                columns.len()
            ));
            continue;
        }
        let user_name = user_col.map(|i| f[i].clone()).unwrap_or_default();
        if user_name.is_empty() {
            problems.push(format!("line {row}: no user_name"));
            continue;
        }
        let keys = match keys_col.map(|i| f[i].as_str()) {
            None | Some("") => default_keys,
            Some(k) => match k.parse::<u32>() {
                Ok(n @ 1..=2) => n,
                _ => {
                    problems.push(format!("line {row}: keys is {k:?}; one or two per person"));
                    continue;
                }
            },
        };
        out.push(IssueListEntry {
            row,
            user_name,
            keys,
        });
    }
    if out.is_empty() && problems.is_empty() {
        problems.push("the list names nobody".to_owned());
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::IssuingList(format!(
            "the list was not accepted and nothing was issued: {}",
            problems.join("; ")
        )))
    }
}

/// The fields of one CSV line: comma-separated, each trimmed, double quotes around a field
/// (with `""` inside for a quote) taken off.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur).trim().to_owned()),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur.trim().to_owned());
    out
}

/// Who the list names: CSV rows, or a SCIM group's members.
#[derive(Debug, Clone)]
pub enum IssueList {
    /// Rows read from a CSV list.
    Rows(Vec<IssueListEntry>),
    /// A SCIM group (its display name), each member with this many keys.
    ScimGroup {
        /// The group.
        name: String,
        /// Keys per person.
        keys_per_person: u32,
    },
}

/// Open an issuing session on this station: the staff member's key (its id and PIN) answers a fresh
/// challenge (their PIN and a touch), and the service checks that they may issue keys, that
/// this laptop is an issuing station and that every person of the list can be issued a key.
pub fn open_session(
    agent: &Agent,
    list: &IssueList,
    (staff_key, staff_pin): (&str, &str),
    prompt: &dyn Prompt,
) -> Result<IssueSession> {
    let step_up = crate::stepup::step_up(agent, "issue_keys", staff_key, staff_pin, prompt)?;
    let req = match list {
        IssueList::Rows(rows) => IssueSessionRequest {
            step_up,
            people: rows.clone(),
            scim_group: None,
            keys_per_person: None,
        },
        IssueList::ScimGroup {
            name,
            keys_per_person,
        } => IssueSessionRequest {
            step_up,
            people: Vec::new(),
            scim_group: Some(name.clone()),
            keys_per_person: Some(*keys_per_person),
        },
    };
    agent.call_signed("/api/v1/agent/issuing/sessions", &req)
}

/// One key issued to one person.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// Whose it is.
    pub person: IssuePerson,
    /// The key, as it was after issuing (PIN set, forced change pending).
    pub key: KeyInfo,
    /// What the service bound (status `issued`).
    pub result: EnrolFinishResponse,
    /// Until when the person may activate it (unix ms).
    pub expires_at_ms: i64,
    /// The PIN drawn for it: for the PIN sheet only.
    pub pin: IssuedPin,
}

/// Prompts of an issuing ceremony: the drawn PIN is the key's new PIN and the PIN it is asked
/// for; nothing is asked of anyone.
struct DrawnPin<'a> {
    pin: &'a IssuedPin,
    prompt: &'a dyn Prompt,
}

impl Prompt for DrawnPin<'_> {
    fn touch(&self, key: &KeyInfo) {
        self.prompt.touch(key);
    }
}

impl EnrolPrompts for DrawnPin<'_> {
    fn choose_key(&self, _keys: &[KeyInfo]) -> Result<usize> {
        Err(Error::Cancelled)
    }
    fn new_pin(&self, _key: &KeyInfo, min_len: u32) -> Result<String> {
        if self.pin.0.chars().count() < min_len as usize {
            return Err(Error::PinRejected(format!(
                "the drawn PIN is shorter than the key's minimum of {min_len}"
            )));
        }
        Ok(self.pin.0.clone())
    }
    fn pin(&self, _key: &KeyInfo, _retries: Option<u32>, last_failed: bool) -> Result<String> {
        if last_failed {
            return Err(Error::PinRejected(
                "the key refused the PIN just set on it".into(),
            ));
        }
        Ok(self.pin.0.clone())
    }
}

/// How many digits the PIN of a key issued under `begin` gets: at least
/// [`MIN_ISSUED_PIN_DIGITS`], the population's minimum and the key's own.
fn pin_digits(begin: &EnrolBeginResponse, key: &KeyInfo) -> u32 {
    let policy = begin
        .key_policy
        .as_ref()
        .and_then(|p| p.min_pin_length)
        .unwrap_or(0);
    MIN_ISSUED_PIN_DIGITS
        .max(policy)
        .max(crate::pin::min_pin_length(key))
}

/// Issue the blank key `key_id` to `person` in the issuing session `session`: draw its PIN,
/// enrol it for them (the service verifies the attestation and binds it, issued, not yet
/// activated) and make it demand a PIN change before its next use.
pub fn issue_key(
    agent: &Agent,
    session: &IssueSession,
    person: &IssuePerson,
    key_id: &str,
    prompt: &dyn Prompt,
) -> Result<IssuedKey> {
    let info = agent.open_key(key_id)?.info()?;
    if info.pin_set {
        return Err(Error::KeyNotBlank {
            key: key_id.to_owned(),
        });
    }
    let begin: EnrolBeginResponse = agent.call_signed(
        &format!(
            "/api/v1/agent/issuing/sessions/{}/ceremonies",
            session.session_id
        ),
        &IssueCeremonyRequest {
            person_id: person.person.id.clone(),
        },
    )?;
    let pin = IssuedPin::random(pin_digits(&begin, &info));
    let prompts = DrawnPin { pin: &pin, prompt };
    let enrolled = agent.enrol_key(&begin, Some(key_id), &prompts)?;
    // Last: a key demanding a new PIN gives no PIN token, so the credential was made first.
    let mut key = agent.open_key(key_id)?;
    let now = key.info()?;
    // The population's minimum (already on the key), or the key's own: never above the PIN's.
    let min = begin
        .key_policy
        .as_ref()
        .and_then(|p| p.min_pin_length)
        .unwrap_or(0)
        .max(crate::pin::min_pin_length(&now));
    key.config(
        &ConfigCommand::set_min_pin_length(min, &[&begin.options.rp_id], true),
        pin.reveal(),
    )?;
    let key_after = key.info()?;
    let expires_at_ms = enrolled
        .result
        .credential
        .created_at_ms
        .saturating_add(session.issued_key_ttl_ms);
    Ok(IssuedKey {
        person: person.clone(),
        key: key_after,
        result: enrolled.result,
        expires_at_ms,
        pin,
    })
}

/// The blank keys present (no PIN set), in the order the keyring lists them, leaving out
/// `used`.
pub fn blank_keys(agent: &Agent, used: &[String]) -> Result<Vec<KeyInfo>> {
    Ok(agent
        .keys()?
        .into_iter()
        .filter(|k| !k.pin_set && !used.contains(&k.id))
        .collect())
}

/// On the person's own laptop, after the PIN of a key IT issued was changed: a fresh
/// user-verified assertion with it (the new PIN and a touch) shows the service the change was
/// made, and the key becomes active. A key that was not issued, or is active already, is
/// refused by the service with `issued_key_not_pending`.
pub fn activate(
    agent: &Agent,
    key_id: &str,
    pin: &str,
    prompt: &dyn Prompt,
) -> Result<IssuedKeyActivated> {
    let proof = crate::stepup::step_up(agent, "activate_issued_key", key_id, pin, prompt)?;
    agent.call_signed("/api/v1/agent/issued-keys/activate", &proof)
}

/// After a PIN change on this laptop: [`activate`] the key if IT issued it to this laptop's
/// person and it waits for activation; `None` when there is nothing to activate (the key was
/// not issued, is active already, or this laptop is not provisioned).
pub fn activate_if_issued(
    agent: &Agent,
    key_id: &str,
    pin: &str,
    prompt: &dyn Prompt,
) -> Result<Option<IssuedKeyActivated>> {
    if agent.config().is_err() {
        return Ok(None);
    }
    match activate(agent, key_id, pin, prompt) {
        Ok(done) => Ok(Some(done)),
        Err(e)
            if matches!(
                e.service_code(),
                Some(
                    keywarden_protocol::ErrorCode::IssuedKeyNotPending
                        | keywarden_protocol::ErrorCode::CredentialUnknown
                )
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_drawn_pin_is_digits_of_the_asked_length_and_hidden_from_debug() {
        let pin = IssuedPin::random(8);
        assert_eq!(pin.reveal().len(), 8);
        assert!(pin.reveal().chars().all(|c| c.is_ascii_digit()));
        assert!(!format!("{pin:?}").contains(pin.reveal()));
        // Two draws of twelve digits are the same once in 10^12.
        assert_ne!(IssuedPin::random(12), IssuedPin::random(12));
    }

    #[test]
    fn a_list_with_bad_rows_names_every_one_and_gives_nothing() {
        let text = "user_name,keys\nada@example.com,1\n\n,1\nbob@example.com,3\ncy@example.com\n";
        let e = parse_csv(text, 1).unwrap_err().to_string();
        for needle in [
            "line 4: no user_name",
            "line 5: keys is \"3\"",
            "line 6: 1 fields",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
        let e = parse_csv("email\nada@example.com\n", 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown column \"email\""), "{e}");
        assert!(e.contains("no user_name column"), "{e}");
    }

    #[test]
    fn a_good_list_keeps_its_line_numbers_and_default_key_count() {
        let rows = parse_csv("user_name\n\"ada@example.com\"\nbob@example.com\n", 2).unwrap();
        assert_eq!(
            rows,
            vec![
                IssueListEntry {
                    row: 2,
                    user_name: "ada@example.com".into(),
                    keys: 2
                },
                IssueListEntry {
                    row: 3,
                    user_name: "bob@example.com".into(),
                    keys: 2
                },
            ]
        );
    }
}
