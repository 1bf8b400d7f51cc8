//! The coverage report as text for the terminal (`keywarden-server report ...`).

use std::fmt::Write as _;

use super::CoverageReport;

/// The report as text for the terminal.
pub fn render(report: &CoverageReport, what: &str) -> String {
    let mut s = String::new();
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    if what == "coverage" || what == "all" {
        let _ = writeln!(s, "Coverage by population");
        let _ = writeln!(
            s,
            "{:<24} {:>8} {:>10} {:>8}  by status",
            "population", "people", "compliant", "share"
        );
        for p in &report.populations {
            let detail = p
                .by_status
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                s,
                "{:<24} {:>8} {:>10} {:>8}  {detail}",
                p.name,
                p.people,
                p.compliant,
                pct(p.share_compliant)
            );
        }
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
            "  {:<18} {:>9} {:>13} {:>8}",
            "signal", "compliant", "non-compliant", "unknown"
        );
        for p in &report.posture {
            let _ = writeln!(
                s,
                "  {:<18} {:>9} {:>13} {:>8}",
                p.signal, p.compliant, p.non_compliant, p.unknown
            );
        }
        if !report.posture_by_population.is_empty() {
            let _ = writeln!(
                s,
                "\nLaptop posture by population (ongoing policy; unknown or no report fails)"
            );
            let _ = writeln!(
                s,
                "  {:<22} {:>8} {:>10} {:>8}  failing by signal",
                "population", "laptops", "compliant", "share"
            );
            for p in &report.posture_by_population {
                let detail = p
                    .failing_by_signal
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = writeln!(
                    s,
                    "  {:<22} {:>8} {:>10} {:>8}  {detail}",
                    p.population,
                    p.laptops,
                    p.compliant,
                    pct(p.share_compliant)
                );
            }
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
