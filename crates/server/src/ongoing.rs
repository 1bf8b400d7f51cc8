//! Ongoing laptop posture per population, for the coverage report: each laptop's latest report
//! is judged against the ongoing-posture requirements of the population of each person with an
//! active key enrolled on it. A laptop shared by people of two populations is judged once for
//! each. A laptop that has sent no report fails any requirement, and an unknown signal fails the
//! requirement on it, as at enrolment.
//!
//! The coverage query already groups each person's active credentials; it also names the laptop
//! of everyone whose keys were all enrolled on one (the lowest and highest laptop id agree), and
//! says who has several. Only those are looked up one by one.

use std::collections::{BTreeMap, HashMap, HashSet};

use keywarden_protocol::{Posture, Report};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa::ToSchema;

use crate::error::Result;
use crate::policy::{posture_failures_by_signal, PostureRequirements};

/// One population's laptops against its ongoing-posture requirements.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PopulationPosture {
    /// Population name.
    pub population: String,
    /// The requirements judged.
    pub requirements: PostureRequirements,
    /// Laptops of the population's active people.
    pub laptops: u64,
    /// How many meet every requirement.
    pub compliant: u64,
    /// How many fail at least one.
    pub non_compliant: u64,
    /// `compliant / laptops` (1.0 when there are none).
    pub share_compliant: f64,
    /// Failing laptops per signal: `disk_encryption`, `firewall`, `secure_boot`, `os_version`,
    /// `os_update_age`, `screen_lock`, `screen_lock_delay`, `integrity_protection`,
    /// `app_verification`, `malware_protection`, `mdm_enrolled`, `no_report` (a laptop failing
    /// two signals counts in both).
    pub failing_by_signal: BTreeMap<String, u64>,
}

/// A laptop and the posture of its latest report.
#[derive(Debug, Clone)]
pub struct Laptop {
    /// Host name given at provisioning.
    pub hostname: String,
    /// Posture of the latest report; `None` before the first.
    pub posture: Option<Posture>,
}

/// Every laptop with the posture of its latest report.
pub async fn laptops(db: &AnyPool) -> Result<HashMap<String, Laptop>> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT d.id, d.hostname, r.body FROM devices d \
         LEFT JOIN reports r ON r.device_id = d.id AND r.report_id = d.last_report_id",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, hostname, body)| {
            let posture = body
                .and_then(|b| serde_json::from_str::<Report>(&b).ok())
                .map(|r| r.posture);
            (id, Laptop { hostname, posture })
        })
        .collect())
}

/// A person whose population requires ongoing posture.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// Person id.
    pub person_id: String,
    /// Their population.
    pub population: &'a str,
    /// Its ongoing requirements (not empty).
    pub requirements: &'a PostureRequirements,
    /// The laptops their active keys were enrolled on.
    pub laptops: Laptops,
}

/// The laptops a person's active keys were enrolled on, from the coverage aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Laptops {
    /// All of them (none or one).
    Known(Vec<String>),
    /// Two or more: looked up when judged.
    Several,
}

impl Laptops {
    /// From the coverage aggregate: the one laptop when `MIN(device_id) = MAX(device_id)`, and
    /// whether they differ.
    pub fn from_aggregate(one: Option<String>, several: bool) -> Laptops {
        match (one, several) {
            (_, true) => Laptops::Several,
            (Some(a), false) => Laptops::Known(vec![a]),
            (None, false) => Laptops::Known(Vec::new()),
        }
    }
}

/// What [`evaluate`] found.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Per population with requirements, by name.
    pub populations: Vec<PopulationPosture>,
    /// Per person: each failing laptop's failures, as `<hostname>: <why>`.
    pub failures: HashMap<String, Vec<String>>,
}

/// Judge the laptops of `subjects` against their populations' requirements at `now`.
/// `required` names every population with requirements (listed even without laptops).
pub async fn evaluate(
    db: &AnyPool,
    now: i64,
    required: &[(&str, &PostureRequirements)],
    subjects: &[Subject<'_>],
    laptops: &HashMap<String, Laptop>,
) -> Result<Evaluation> {
    #[derive(Default)]
    struct Tally {
        laptops: HashSet<String>,
        failing: HashSet<String>,
        by_signal: BTreeMap<String, HashSet<String>>,
    }
    let mut tallies: BTreeMap<&str, Tally> = required
        .iter()
        .map(|(name, _)| (*name, Tally::default()))
        .collect();
    let mut out = Evaluation::default();
    for subject in subjects {
        let devices = match &subject.laptops {
            Laptops::Known(d) => d.clone(),
            Laptops::Several => {
                sqlx::query_scalar::<_, String>(
                    "SELECT DISTINCT device_id FROM credentials WHERE person_id = $1 AND status = 'active'",
                )
                .bind(&subject.person_id)
                .fetch_all(db)
                .await?
            }
        };
        for device in devices {
            let laptop = laptops.get(&device);
            let failures = posture_failures_by_signal(
                subject.requirements,
                laptop.and_then(|l| l.posture.as_ref()),
                now,
            );
            let tally = tallies.entry(subject.population).or_default();
            tally.laptops.insert(device.clone());
            if failures.is_empty() {
                continue;
            }
            tally.failing.insert(device.clone());
            let name = laptop.map_or(device.as_str(), |l| l.hostname.as_str());
            let mine = out.failures.entry(subject.person_id.clone()).or_default();
            for (signal, why) in failures {
                tally
                    .by_signal
                    .entry(signal.to_owned())
                    .or_default()
                    .insert(device.clone());
                mine.push(format!("{name}: {why}"));
            }
        }
    }
    for (name, requirements) in required {
        let t = tallies.remove(name).unwrap_or_default();
        let laptops = t.laptops.len() as u64;
        let non_compliant = t.failing.len() as u64;
        let compliant = laptops - non_compliant;
        out.populations.push(PopulationPosture {
            population: (*name).to_owned(),
            requirements: (*requirements).clone(),
            laptops,
            compliant,
            non_compliant,
            share_compliant: if laptops == 0 {
                1.0
            } else {
                compliant as f64 / laptops as f64
            },
            failing_by_signal: t
                .by_signal
                .into_iter()
                .map(|(k, v)| (k, v.len() as u64))
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aggregate_names_one_laptop_and_asks_about_several() {
        assert_eq!(Laptops::from_aggregate(None, false), Laptops::Known(vec![]));
        assert_eq!(
            Laptops::from_aggregate(Some("a".into()), false),
            Laptops::Known(vec!["a".into()])
        );
        assert_eq!(Laptops::from_aggregate(None, true), Laptops::Several);
    }
}
