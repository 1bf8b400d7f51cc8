//! The coverage report as text for the terminal (`keywarden-server report ...`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::CoverageReport;

/// The report as text for the terminal.
pub fn render(report: &CoverageReport, what: &str) -> String {
    let mut s = String::new();
    if what == "coverage" || what == "all" {
        let _ = writeln!(s, "Coverage by population");
        population_table(
            &mut s,
            "",
            ("people", "by status"),
            report.populations.iter().map(|p| PopulationRow {
                name: &p.name,
                counted: p.people,
                compliant: p.compliant,
                share: p.share_compliant,
                detail: &p.by_status,
            }),
        );
        let total: u64 = report.by_status.values().sum();
        let _ = writeln!(s, "\nPeople by status ({total} active)");
        for (k, v) in &report.by_status {
            let _ = writeln!(s, "  {k:<22} {v}");
        }
        if !report.expired_exceptions.is_empty() {
            let _ = writeln!(
                s,
                "\nExpired exceptions (exempt nobody; need a decision): {}",
                report.expired_exceptions.len()
            );
            for e in &report.expired_exceptions {
                let _ = writeln!(
                    s,
                    "  {} {} person {} owner {} expired {}",
                    e.id,
                    e.kind,
                    e.person_id,
                    e.owner,
                    crate::secrets::fmt_time(e.expires_at_ms)
                );
            }
        }
    }
    if what == "keys" || what == "all" {
        let _ = writeln!(s, "\nKeys by model (active credentials)");
        for m in &report.keys_by_model {
            let _ = writeln!(
                s,
                "  {:<38} {:<32} {}",
                m.aaguid,
                m.model.as_deref().unwrap_or("(unknown model)"),
                m.credentials
            );
        }
    }
    if what == "posture" || what == "all" {
        let _ = writeln!(s, "\nLaptop posture by signal (latest report per laptop)");
        let _ = writeln!(
            s,
            "  {:<20} {:>9} {:>13} {:>8}",
            "signal", "compliant", "non-compliant", "unknown"
        );
        for p in &report.posture {
            let _ = writeln!(
                s,
                "  {:<20} {:>9} {:>13} {:>8}",
                p.signal, p.compliant, p.non_compliant, p.unknown
            );
        }
        if !report.posture_by_population.is_empty() {
            let _ = writeln!(
                s,
                "\nLaptop posture by population (ongoing policy; unknown or no report fails)"
            );
            population_table(
                &mut s,
                "  ",
                ("laptops", "failing by signal"),
                report.posture_by_population.iter().map(|p| PopulationRow {
                    name: &p.population,
                    counted: p.laptops,
                    compliant: p.compliant,
                    share: p.share_compliant,
                    detail: &p.failing_by_signal,
                }),
            );
        }
    }
    if what == "people" {
        let _ = writeln!(
            s,
            "{:<32} {:<16} {:<20} {:>6}  classes",
            "person", "population", "status", "active"
        );
        for p in &report.people {
            let classes = p
                .device_classes
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let _ = writeln!(
                s,
                "{:<32} {:<16} {:<20} {:>6}  {classes}",
                p.user_name,
                p.population,
                p.status.as_str(),
                p.active_authenticators
            );
        }
    }
    s
}

/// One population in a table by population.
struct PopulationRow<'a> {
    name: &'a str,
    /// People or laptops.
    counted: u64,
    compliant: u64,
    share: f64,
    /// The counts behind the rest (by status, failing by signal).
    detail: &'a BTreeMap<String, u64>,
}

/// A table by population, `indent` from the left with its name column ending where an
/// unindented one does: the column names (what is `counted`, and what the detail is), then per
/// population the count, how many are compliant, the share, and the detail as `k=v k=v`.
fn population_table<'a>(
    s: &mut String,
    indent: &str,
    (counted, detail): (&str, &str),
    rows: impl Iterator<Item = PopulationRow<'a>>,
) {
    let w = 24 - indent.len();
    let _ = writeln!(
        s,
        "{indent}{:<w$} {:>8} {:>10} {:>8}  {detail}",
        "population", counted, "compliant", "share"
    );
    for p in rows {
        let detail = p
            .detail
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let share = format!("{:.1}%", p.share * 100.0);
        let _ = writeln!(
            s,
            "{indent}{:<w$} {:>8} {:>10} {:>8}  {detail}",
            p.name, p.counted, p.compliant, share
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_tables_line_up_indented_or_not() {
        let detail = BTreeMap::from([("compliant".to_owned(), 3), ("no_report".to_owned(), 1)]);
        let row = || PopulationRow {
            name: "engineering",
            counted: 4,
            compliant: 3,
            share: 0.75,
            detail: &detail,
        };
        for (indent, headings, expected) in [
            (
                "",
                ("people", "by status"),
                "population                 people  compliant    share  by status\n\
                 engineering                     4          3    75.0%  compliant=3 no_report=1\n",
            ),
            (
                "  ",
                ("laptops", "failing"),
                "  population              laptops  compliant    share  failing\n  \
                 engineering                   4          3    75.0%  compliant=3 no_report=1\n",
            ),
        ] {
            let mut s = String::new();
            population_table(&mut s, indent, headings, std::iter::once(row()));
            assert_eq!(s, expected);
        }
    }
}
