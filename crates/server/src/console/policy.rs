//! The console's policy page: the populations and their rules. An admin edits a population's
//! definition, picks the key models it allows (the AAGUID allow-list) from the FIDO metadata the
//! service loaded and the models people hold, plus AAGUIDs typed by hand, and previews who would
//! fall out of compliance before saving. The picker only writes the definition's
//! `aaguid_allow_list` in the page; Preview and Save send the definition to the API as before.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::access::{with, Console};
use super::html::page;
use crate::auth::AnyStaff;
use crate::csf::esc;
use crate::error::{Error, Result};
use crate::policy::{Population, Selector};
use crate::state::AppState;

/// A key model an allow-list can name.
#[derive(Debug, Default)]
struct Choice {
    /// Its name, from the FIDO metadata or from the credentials that carry it.
    name: Option<String>,
    /// Whether the FIDO metadata lists it, and as trusted.
    metadata: Option<bool>,
    /// Active credentials of this model.
    held: u64,
}

/// Every model the page offers: the FIDO metadata's, those people hold, and those already
/// allowed somewhere, by AAGUID.
async fn choices(state: &AppState, populations: &[Population]) -> Result<BTreeMap<String, Choice>> {
    let mut out: BTreeMap<String, Choice> = BTreeMap::new();
    for m in crate::store::console::metadata_models(&state.db).await? {
        let c = out.entry(m.aaguid).or_default();
        c.name = m.description;
        c.metadata = Some(m.trusted != 0);
    }
    for m in crate::store::coverage::models(&state.db).await? {
        let c = out.entry(m.aaguid).or_default();
        c.name = c.name.take().or(m.model);
        c.held += u64::try_from(m.n).unwrap_or(0);
    }
    for p in populations {
        for a in &p.spec.policy.aaguid_allow_list {
            out.entry(a.clone()).or_default();
        }
    }
    if let Some(soft) = out.get_mut(keywarden_protocol::SOFT_KEY_AAGUID) {
        soft.name
            .get_or_insert_with(|| "Keywarden software key (test and demo only)".to_owned());
    }
    Ok(out)
}

/// The picker of one population's form: a box per model, ticked when allowed, and the allowed
/// AAGUIDs that are no model the page knows, one per line.
fn picker(name: &str, allowed: &[String], choices: &BTreeMap<String, Choice>) -> String {
    let mut ordered: Vec<(&String, &Choice)> = choices.iter().collect();
    ordered.sort_by_key(|(aaguid, c)| (c.name.clone().unwrap_or_default(), (*aaguid).clone()));
    let boxes: String = ordered
        .iter()
        .filter(|(_, c)| c.name.is_some() || c.metadata.is_some() || c.held > 0)
        .map(|(aaguid, c)| {
            let source = match c.metadata {
                Some(true) => "FIDO metadata, trusted",
                Some(false) => "FIDO metadata, not trusted",
                None => "not in the FIDO metadata",
            };
            format!(
                "<li><label><input type=\"checkbox\" value=\"{a}\"{checked}> {model} <code>{a}</code> \
                 <span class=\"muted\">({source}; {held} active)</span></label></li>",
                a = esc(aaguid),
                checked = if allowed.contains(aaguid) { " checked" } else { "" },
                model = esc(c.name.as_deref().unwrap_or("(unnamed model)")),
                held = c.held,
            )
        })
        .collect();
    let typed: Vec<&str> = allowed
        .iter()
        .filter(|a| {
            choices
                .get(*a)
                .is_none_or(|c| c.name.is_none() && c.metadata.is_none() && c.held == 0)
        })
        .map(String::as_str)
        .collect();
    format!(
        "<fieldset data-allow-list><legend>Key models allowed (AAGUID allow-list)</legend>\
         <p class=\"muted\">None ticked and none typed: any model (the attestation rules still apply). \
         Models come from the FIDO metadata the service loaded and from the keys people hold.</p>\
         <ul class=\"choices\">{boxes}</ul>\
         <label for=\"other-{name}\">Other AAGUIDs, one per line</label>\
         <textarea id=\"other-{name}\" data-other rows=\"2\" spellcheck=\"false\">{}</textarea></fieldset>",
        esc(&typed.join("\n")),
        name = esc(name),
    )
}

/// `GET /console/policy`: the populations and their rules; an admin edits one, picks its key
/// models and previews who would fall out of compliance before saving.
pub async fn policy(State(state): State<AppState>, caller: Console<AnyStaff>) -> Response {
    with(caller, |caller| async move {
        let policies =
            crate::policy::Policies::load(&state.db, state.settings.min_authenticators).await?;
        let admin = caller.role == crate::auth::Role::Admin;
        let choices = if admin {
            choices(&state, &policies.populations).await?
        } else {
            BTreeMap::new()
        };
        let mut main = String::from(
            "<h1>Policy</h1><p>A person belongs to the first population (by priority) whose rule matches them, else to <em>default</em>.</p>\
             <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>",
        );
        for p in &policies.populations {
            let spec = serde_json::to_string_pretty(&p.spec).map_err(Error::Corrupt)?;
            let rule = match &p.spec.selector {
                Selector::Group { value } => format!("members of group {}", esc(value)),
                Selector::Attribute { key, value } => format!("{} = {}", esc(key), esc(value)),
            };
            let policy = &p.spec.policy;
            let classes: Vec<&str> = policy.required_device_classes.iter().map(|c| c.as_str()).collect();
            let models = match policy.aaguid_allow_list.len() {
                0 => "any key model".to_owned(),
                n => format!("{n} key model(s) allowed"),
            };
            main.push_str(&format!(
                "<section aria-labelledby=\"pop-{name}\"><h2 id=\"pop-{name}\">{name}</h2>\
                 <p>Priority {}; {rule}. At least {} active authenticators on {} kind(s) of device{}; synced passkeys {}; trusted attestation {}; {models}{}.</p>",
                p.spec.priority,
                policy.min_authenticators,
                policy.min_device_classes,
                if classes.is_empty() { String::new() } else { format!(", including {}", esc(&classes.join(", "))) },
                if policy.allow_synced { "allowed" } else { "not allowed" },
                if policy.require_trusted_attestation { "required" } else { "not required" },
                on_key_text(policy),
                name = esc(&p.name),
            ));
            if admin {
                main.push_str(&format!(
                    "<form data-api=\"PUT /api/v1/admin/populations/{name}\" data-json=\"spec\" data-done=\"reload\" class=\"card\">\
                     {picker}\
                     <label for=\"spec-{name}\">Definition (JSON)</label>\
                     <textarea id=\"spec-{name}\" name=\"spec\" rows=\"12\" spellcheck=\"false\">{}</textarea>\
                     <p><button type=\"submit\" data-api=\"POST /api/v1/admin/populations/{name}/preview\" data-done=\"show-preview\">Preview impact</button> \
                     <button type=\"submit\" class=\"primary\">Save</button></p></form>",
                    esc(&spec),
                    picker = picker(&p.name, &policy.aaguid_allow_list, &choices),
                    name = esc(&p.name),
                ));
            }
            main.push_str("</section>");
        }
        main.push_str("<output id=\"result\" class=\"result\" aria-live=\"polite\"></output>");
        Ok(page("Policy", "/console/policy", Some(&caller), &main).into_response())
    })
    .await
}

/// "; set on each key at enrolment: minimum PIN length 8, the PIN for every use", or nothing.
fn on_key_text(policy: &crate::policy::Policy) -> String {
    let Some(k) = policy.key_policy() else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(n) = k.min_pin_length {
        parts.push(format!("minimum PIN length {n}"));
    }
    if k.always_uv {
        parts.push("the PIN for every use".to_owned());
    }
    format!("; set on each key at enrolment: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picker_ticks_the_allowed_models_and_lists_the_others_as_typed() {
        let mut choices = BTreeMap::new();
        let trusted = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
        let held = "ee882879-721c-4913-9775-3dfcce97072a";
        let typed = "00000000-0000-0000-0000-00000000beef";
        choices.insert(
            trusted.to_owned(),
            Choice {
                name: Some("YubiKey 5 NFC".into()),
                metadata: Some(true),
                held: 0,
            },
        );
        choices.insert(
            held.to_owned(),
            Choice {
                name: Some("Key <b>".into()),
                metadata: None,
                held: 3,
            },
        );
        choices.insert(typed.to_owned(), Choice::default());
        let html = picker("staff", &[trusted.to_owned(), typed.to_owned()], &choices);
        assert!(
            html.contains(&format!("value=\"{trusted}\" checked> YubiKey 5 NFC")),
            "{html}"
        );
        assert!(html.contains("FIDO metadata, trusted; 0 active"), "{html}");
        assert!(
            html.contains(&format!("value=\"{held}\"> Key &lt;b&gt;")),
            "{html}"
        );
        assert!(
            html.contains("not in the FIDO metadata; 3 active"),
            "{html}"
        );
        // An allowed AAGUID the page knows no model of is offered as typed, not as a box.
        assert!(!html.contains(&format!("value=\"{typed}\"")), "{html}");
        assert!(
            html.contains(&format!(
                "data-other rows=\"2\" spellcheck=\"false\">{typed}</textarea>"
            )),
            "{html}"
        );
    }
}
