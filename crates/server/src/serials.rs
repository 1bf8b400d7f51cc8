//! Key serial numbers, where policy forbids collecting them (`collect_serial_numbers: false`,
//! e.g. BYOD): the agent names a USB key that exposes a serial `hid:<serial>`, and such ids are
//! withheld before anything is stored, in reports and in enrolled credentials' key info.
//!
//! Withheld means dropped, not hashed: key serials are short enough that any unkeyed hash of
//! one is reversed by trying them all, so the service keeps nothing derived from the serial. The
//! id becomes `hid:serial-withheld-<n>` (n counts the keys of one report or enrolment), and
//! `id_from_serial` is set to false. An id from an older agent that does not say whether it
//! came from a serial is withheld if it is a `hid:` id at all.
//!
//! Whose policy applies to a laptop's reports: that of every person who opened an enrolment or
//! enrolled a key on it. A laptop nobody has enrolled on yet is withheld from as soon as any
//! population (the default one included) forbids serials, since it may be anyone's.

use keywarden_protocol::{KeyBackend, KeyInfo};
use sqlx::{Any, Transaction};

use crate::error::Result;
use crate::policy::{self, Policies, Policy};

/// Prefix of a withheld key id.
pub const WITHHELD_PREFIX: &str = "hid:serial-withheld-";

/// True when the key's id may carry its serial number.
pub fn may_carry_serial(key: &KeyInfo) -> bool {
    key.id_from_serial != Some(false)
        && (key.backend == KeyBackend::Hid || key.id.starts_with("hid:"))
}

/// Withhold every serial-derived id among `keys`; returns how many were withheld.
pub fn withhold(keys: &mut [KeyInfo]) -> usize {
    let mut n = 0;
    for k in keys.iter_mut().filter(|k| may_carry_serial(k)) {
        n += 1;
        k.id = format!("{WITHHELD_PREFIX}{n}");
        k.id_from_serial = Some(false);
    }
    n
}

/// A key as an enrolled credential's key info stores it under `policy`.
pub fn as_stored(key: &KeyInfo, policy: &Policy) -> KeyInfo {
    let mut key = key.clone();
    if !policy.collect_serial_numbers {
        withhold(std::slice::from_mut(&mut key));
    }
    key
}

/// The same for a stored report body, kept as JSON so that fields this service does not know
/// (a newer agent's) are kept too. Returns the new body when something was withheld.
pub fn withhold_in_report(body: &str) -> Result<Option<String>> {
    let mut v: serde_json::Value = serde_json::from_str(body).map_err(crate::Error::Corrupt)?;
    let Some(keys) = v.get_mut("keys").and_then(|k| k.as_array_mut()) else {
        return Ok(None);
    };
    let mut n = 0;
    for k in keys.iter_mut() {
        let Ok(info) = serde_json::from_value::<KeyInfo>(k.clone()) else {
            continue;
        };
        if may_carry_serial(&info) {
            n += 1;
            k["id"] = serde_json::Value::String(format!("{WITHHELD_PREFIX}{n}"));
            k["id_from_serial"] = serde_json::Value::Bool(false);
        }
    }
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(v.to_string()))
}

/// True when some population, the default one included, forbids collecting serials.
pub fn any_forbid(policies: &Policies) -> bool {
    !policies.default.collect_serial_numbers
        || policies
            .populations
            .iter()
            .any(|p| !p.spec.policy.collect_serial_numbers)
}

/// Whether serials may be stored for reports from `device_id` (see the module docs).
pub async fn allowed_for_device(
    tx: &mut Transaction<'_, Any>,
    policies: &Policies,
    device_id: &str,
) -> Result<bool> {
    if !any_forbid(policies) {
        return Ok(true);
    }
    let people: Vec<String> = sqlx::query_scalar(
        "SELECT person_id FROM enrolment_sessions WHERE device_id = $1 \
         UNION SELECT person_id FROM credentials WHERE device_id = $1",
    )
    .bind(device_id)
    .fetch_all(&mut **tx)
    .await?;
    if people.is_empty() {
        return Ok(false);
    }
    for person in people {
        let attrs = policy::person_attrs(tx, &person).await?;
        if !policies.resolve(&attrs).1.collect_serial_numbers {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, backend: KeyBackend, id_from_serial: Option<bool>) -> KeyInfo {
        KeyInfo {
            pin_set: true,
            id_from_serial,
            ..KeyInfo::new(id, backend, "key", "cb69481e-8ff7-4039-93ec-0a2729a154a8")
        }
    }

    #[test]
    fn serial_ids_and_unmarked_hid_ids_are_withheld_the_rest_kept() {
        let mut keys = vec![
            key("hid:12345678", KeyBackend::Hid, Some(true)),
            key(
                "hid:0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                KeyBackend::Hid,
                Some(false),
            ),
            key("hid:87654321", KeyBackend::Hid, None),
            key("soft:abc", KeyBackend::Soft, Some(false)),
        ];
        assert_eq!(withhold(&mut keys), 2);
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "hid:serial-withheld-1",
                "hid:0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                "hid:serial-withheld-2",
                "soft:abc"
            ]
        );
    }

    #[test]
    fn a_report_body_keeps_its_other_fields() {
        let body = serde_json::json!({"report_id": "r", "future_field": 7,
            "keys": [serde_json::to_value(key("hid:12345678", KeyBackend::Hid, Some(true))).unwrap()]})
        .to_string();
        let out = withhold_in_report(&body).unwrap().unwrap();
        assert!(!out.contains("12345678"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["future_field"], 7);
        assert_eq!(v["keys"][0]["id"], "hid:serial-withheld-1");
        let none = serde_json::json!({"keys": [serde_json::to_value(key("soft:a", KeyBackend::Soft, Some(false))).unwrap()]});
        assert_eq!(withhold_in_report(&none.to_string()).unwrap(), None);
    }
}
