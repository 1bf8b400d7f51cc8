//! `keywarden issue`: the IT issuing station's command over `keywarden_agent::issuing`, and
//! `activate-key` on a person's own laptop. The PINs drawn go to the PIN sheets only.

use std::path::Path;

use keywarden_agent::issuing::{self, IssueList, IssuedKey};
use keywarden_agent::Agent;
use keywarden_protocol::{IssuePerson, IssueSession};

use crate::prompts::{read_pin, TouchNotice};
use crate::sheets;

/// What `keywarden issue` was asked.
pub(crate) struct IssueOptions<'a> {
    pub(crate) csv: Option<&'a Path>,
    pub(crate) scim_group: Option<&'a str>,
    pub(crate) out: &'a Path,
    pub(crate) keys_per_person: u32,
    pub(crate) staff_key: &'a str,
    pub(crate) pin_stdin: bool,
    pub(crate) json: bool,
}

/// A session is renewed (a fresh touch of the staff key) this long before it ends.
const RENEW_BEFORE_MS: i64 = 60_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Run an issuing session for the list and write the sheets.
pub(crate) fn issue(agent: &Agent, o: &IssueOptions<'_>) -> anyhow::Result<()> {
    let list = match (o.csv, o.scim_group) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            IssueList::Rows(issuing::parse_csv(&text, o.keys_per_person)?)
        }
        (None, Some(name)) => IssueList::ScimGroup {
            name: name.to_owned(),
            keys_per_person: o.keys_per_person,
        },
        (None, None) => anyhow::bail!("name the people with --csv FILE or --scim-group NAME"),
    };
    let staff_pin = read_pin(o.pin_stdin)?;
    std::fs::create_dir_all(o.out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", o.out.display()))?;
    eprintln!("Confirm with your own key that you may issue keys.");
    let open = || issuing::open_session(agent, &list, (o.staff_key, &staff_pin), &TouchNotice);
    let mut session = open()?;
    eprintln!(
        "Issuing session open for {} people (by {}).",
        session.people.len(),
        session.staff.display_name
    );
    let mut used = vec![o.staff_key.to_owned()];
    let mut done: Vec<serde_json::Value> = Vec::new();
    let people = session.people.clone();
    for person in &people {
        let mut keys = Vec::new();
        for n in 1..=person.keys {
            if now_ms() + RENEW_BEFORE_MS >= session.expires_at_ms {
                eprintln!("The issuing session is about to end: confirm with your key again.");
                session = open()?;
            }
            let issued = issue_one(agent, &session, person, n, &mut used)?;
            let file = sheets::write_pin_sheet(o.out, person, n, &issued)?;
            eprintln!("  PIN sheet: {}", file.display());
            keys.push(issued);
        }
        let file = sheets::write_handover_sheet(o.out, person, &keys, &session.staff)?;
        for k in &keys {
            if o.json {
                done.push(
                    serde_json::json!({"row": person.row, "person": person.person,
                    "key": k.key.id, "credential_id": k.result.credential.id,
                    "status": k.result.credential.status, "expires_at_ms": k.expires_at_ms,
                    "handover_sheet": file}),
                );
            } else {
                println!(
                    "row {}: {} <{}>: key {} issued (credential {}, {}), activate by {}",
                    person.row,
                    person.person.display_name,
                    person.person.user_name,
                    k.key.id,
                    k.result.credential.id,
                    k.result.credential.status,
                    sheets::date(k.expires_at_ms)
                );
            }
        }
    }
    if o.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        println!(
            "{} key(s) issued to {} people; sheets in {}",
            people.iter().map(|p| p.keys).sum::<u32>(),
            people.len(),
            o.out.display()
        );
    }
    Ok(())
}

/// Issue the next blank key present to `person` (their key number `n`).
fn issue_one(
    agent: &Agent,
    session: &IssueSession,
    person: &IssuePerson,
    n: u32,
    used: &mut Vec<String>,
) -> anyhow::Result<IssuedKey> {
    let blank = issuing::blank_keys(agent, used)?;
    let Some(key) = blank.first() else {
        anyhow::bail!(
            "no blank key left for {} (key {n} of {}): plug in a blank key (no PIN set) and run again for the people not yet issued",
            person.person.user_name,
            person.keys
        );
    };
    used.push(key.id.clone());
    eprintln!(
        "Issuing {} to {} <{}>...",
        key.id, person.person.display_name, person.person.user_name
    );
    Ok(issuing::issue_key(
        agent,
        session,
        person,
        &key.id,
        &TouchNotice,
    )?)
}

/// After a PIN change on the person's own laptop: activate the key if IT issued it, saying so;
/// a key that was not issued (or a laptop not provisioned) says nothing.
pub(crate) fn activate_after_change(agent: &Agent, key: &str, pin: &str) {
    match issuing::activate_if_issued(agent, key, pin, &TouchNotice) {
        Ok(Some(done)) => eprintln!(
            "This key was issued to {} by IT: it is active now.",
            done.person.display_name
        ),
        Ok(None) => {}
        Err(e) => eprintln!(
            "note: the key was not activated with the service ({e}); run `keywarden activate-key --key {key}` to try again"
        ),
    }
}

/// `keywarden activate-key`.
pub(crate) fn activate(agent: &Agent, key: &str, pin_stdin: bool) -> anyhow::Result<()> {
    let pin = read_pin(pin_stdin)?;
    let done = issuing::activate(agent, key, &pin, &TouchNotice)?;
    println!(
        "Key {key} is active now: credential {} of {}.",
        done.credential_id, done.person.display_name
    );
    Ok(())
}
