//! Is a host firewall active?
//!
//! The truth is the ruleset loaded in the kernel, and reading it needs `CAP_NET_ADMIN`. When the
//! process holds that capability (and probes the running system) the live nftables ruleset
//! decides, plus the legacy iptables filter table when that module is loaded. Otherwise the
//! configuration of the usual front ends can say yes: ufw with `ENABLED=yes`, or firewalld
//! enabled at boot. Configuration alone never says no, since rules may be loaded by other tools.

use super::{describe, Root};
use crate::command::run;
use keywarden_protocol::Observed;

const UFW_CONF: &str = "/etc/ufw/ufw.conf";
const FIREWALLD_WANTS: &str = "/etc/systemd/system/multi-user.target.wants/firewalld.service";
const CAP_NET_ADMIN: u32 = 12;

pub(crate) fn probe(root: &Root, live: bool) -> Observed<bool> {
    let ufw = ufw_state(root);
    let firewalld = firewalld_state(root);
    match live_ruleset(root, live) {
        Ok(Some(detail)) => Observed::known_because(true, detail),
        Ok(None) => {
            let mut detail =
                "no input filtering in the nftables ruleset and no legacy iptables filter table"
                    .to_owned();
            if ufw == Ufw::Enabled {
                detail.push_str(" (ufw.conf says ENABLED=yes, but ufw has loaded no rules)");
            }
            if firewalld == Firewalld::Enabled {
                detail.push_str(" (firewalld.service is enabled, but has loaded no rules)");
            }
            Observed::known_because(false, detail)
        }
        Err(live_reason) => {
            if ufw == Ufw::Enabled {
                return Observed::known_because(true, format!("ufw enabled in {UFW_CONF}"));
            }
            if firewalld == Firewalld::Enabled {
                return Observed::known_because(
                    true,
                    "firewalld enabled at boot (firewalld.service wanted by multi-user.target)",
                );
            }
            Observed::unknown(format!(
                "{live_reason}; {}, {}",
                ufw.describe(),
                firewalld.describe()
            ))
        }
    }
}

/// What the live ruleset says: `Ok(Some(detail))` filtering, `Ok(None)` none at all, `Err` when
/// it could not be read.
fn live_ruleset(root: &Root, live: bool) -> Result<Option<String>, String> {
    if !has_capability(root, CAP_NET_ADMIN) {
        return Err(
            "reading the nftables ruleset needs root; run the agent's posture probe with \
                    CAP_NET_ADMIN to read it"
                .to_owned(),
        );
    }
    if !live {
        return Err("the live ruleset is only read when probing the running system".to_owned());
    }
    let json = run(
        &["nft", "/usr/sbin/nft", "/sbin/nft"],
        &["-j", "list", "ruleset"],
    )
    .map_err(|e| format!("cannot read the nftables ruleset: {e}"))?;
    if let Some(detail) = nft_input_filtering(&json)? {
        return Ok(Some(detail));
    }
    // Rules loaded through the legacy iptables interface do not show in the nftables ruleset.
    for (names, tool) in [
        ("/proc/net/ip_tables_names", "iptables-legacy-save"),
        ("/proc/net/ip6_tables_names", "ip6tables-legacy-save"),
    ] {
        let tables = match root.read_to_string(names) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {names} ({})", describe(&e))),
        };
        if !tables.lines().any(|t| t.trim() == "filter") {
            continue;
        }
        let saved = run(
            &[tool, &format!("/usr/sbin/{tool}"), &format!("/sbin/{tool}")],
            &["-t", "filter"],
        )
        .map_err(|e| format!("a legacy iptables filter table is loaded but cannot be read: {e}"))?;
        if let Some(detail) = legacy_input_filtering(&saved, tool) {
            return Ok(Some(detail));
        }
    }
    Ok(None)
}

/// Whether the effective capability set in `/proc/self/status` holds capability `bit`.
fn has_capability(root: &Root, bit: u32) -> bool {
    root.read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1u64 << bit) != 0)
}

/// A filtering base chain on the input hook of `nft -j list ruleset`: one with any rule, or a
/// drop policy.
fn nft_input_filtering(json: &str) -> Result<Option<String>, String> {
    let doc: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("`nft -j list ruleset` printed something unreadable ({e})"))?;
    let items = doc
        .get("nftables")
        .and_then(|v| v.as_array())
        .ok_or_else(|| "`nft -j list ruleset` printed no nftables list".to_owned())?;
    let field = |obj: &serde_json::Value, key: &str| -> String {
        obj.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    for chain in items.iter().filter_map(|i| i.get("chain")) {
        if field(chain, "hook") != "input" || field(chain, "type") != "filter" {
            continue;
        }
        let (family, table, name) = (
            field(chain, "family"),
            field(chain, "table"),
            field(chain, "name"),
        );
        let rules = items
            .iter()
            .filter_map(|i| i.get("rule"))
            .filter(|r| {
                field(r, "family") == family
                    && field(r, "table") == table
                    && field(r, "chain") == name
            })
            .count();
        if rules > 0 {
            let s = if rules == 1 { "" } else { "s" };
            return Ok(Some(format!(
                "nftables input chain {family} {table} {name} has {rules} rule{s}"
            )));
        }
        if field(chain, "policy") == "drop" {
            return Ok(Some(format!(
                "nftables input chain {family} {table} {name} drops by default"
            )));
        }
    }
    Ok(None)
}

/// The INPUT chain of the filter table in `iptables-save` output: any rule, or a DROP policy.
fn legacy_input_filtering(saved: &str, tool: &str) -> Option<String> {
    let mut table = "";
    let mut rules = 0usize;
    let mut drops = false;
    for line in saved.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix('*') {
            table = t;
        } else if table == "filter" {
            if line.starts_with("-A INPUT ") {
                rules += 1;
            } else if let Some(policy) = line.strip_prefix(":INPUT ") {
                drops = policy.starts_with("DROP");
            }
        }
    }
    match (rules, drops) {
        (0, false) => None,
        (0, true) => Some(format!("{tool}: filter INPUT chain drops by default")),
        (1, _) => Some(format!("{tool}: filter INPUT chain has 1 rule")),
        (n, _) => Some(format!("{tool}: filter INPUT chain has {n} rules")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ufw {
    NotInstalled,
    Enabled,
    Disabled,
    NoSetting,
    Unreadable(String),
}

impl Ufw {
    fn describe(&self) -> String {
        match self {
            Ufw::NotInstalled => "ufw is not installed".to_owned(),
            Ufw::Enabled => "ufw is enabled".to_owned(),
            Ufw::Disabled => format!("{UFW_CONF} says ENABLED=no, but other tools may load rules"),
            Ufw::NoSetting => format!("{UFW_CONF} has no ENABLED setting"),
            Ufw::Unreadable(why) => format!("cannot read {UFW_CONF} ({why})"),
        }
    }
}

fn ufw_state(root: &Root) -> Ufw {
    let text = match root.read_to_string(UFW_CONF) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ufw::NotInstalled,
        Err(e) => return Ufw::Unreadable(describe(&e)),
    };
    // Shell syntax; the last assignment wins.
    let value = text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("ENABLED="))
        .map(|v| {
            v.split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
        })
        .next_back();
    match value {
        Some(v) if v.eq_ignore_ascii_case("yes") => Ufw::Enabled,
        Some(v) if v.eq_ignore_ascii_case("no") => Ufw::Disabled,
        _ => Ufw::NoSetting,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Firewalld {
    NotInstalled,
    Enabled,
    NotEnabled,
}

impl Firewalld {
    fn describe(&self) -> &'static str {
        match self {
            Firewalld::NotInstalled => "firewalld is not installed",
            Firewalld::Enabled => "firewalld is enabled",
            Firewalld::NotEnabled => "firewalld is installed but not enabled at boot",
        }
    }
}

fn firewalld_state(root: &Root) -> Firewalld {
    if root.exists(FIREWALLD_WANTS) {
        Firewalld::Enabled
    } else if root.exists("/etc/firewalld") || root.exists("/usr/lib/firewalld") {
        Firewalld::NotEnabled
    } else {
        Firewalld::NotInstalled
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    const ROOT_STATUS: &str = "Name:\tkeywarden\nUid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n";
    const USER_STATUS: &str =
        "Name:\tkeywarden\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n";

    fn reason(o: &Observed<bool>) -> String {
        match o {
            Observed::Unknown { reason } => reason.clone(),
            Observed::Known { .. } => panic!("expected unknown, got {o:?}"),
        }
    }

    #[test]
    fn ufw_enabled_is_a_firewall() {
        let f = Fixture::new();
        f.file("/proc/self/status", USER_STATUS).file(
            UFW_CONF,
            "# /etc/ufw/ufw.conf\n#\n\n# Set to yes to start on boot.\nENABLED=yes\nLOGLEVEL=low\n",
        );
        assert_eq!(
            probe(&f.root(), false),
            Observed::known_because(true, "ufw enabled in /etc/ufw/ufw.conf")
        );
    }

    #[test]
    fn firewalld_enabled_is_a_firewall() {
        let f = Fixture::new();
        f.mkdir("/etc/firewalld")
            .symlink(FIREWALLD_WANTS, "/usr/lib/systemd/system/firewalld.service");
        assert_eq!(probe(&f.root(), false).value(), Some(&true));
    }

    #[test]
    fn nothing_readable_is_unknown_with_the_reason() {
        let f = Fixture::new();
        f.file("/proc/self/status", USER_STATUS);
        assert_eq!(
            reason(&probe(&f.root(), false)),
            "reading the nftables ruleset needs root; run the agent's posture probe with \
             CAP_NET_ADMIN to read it; ufw is not installed, firewalld is not installed"
        );
    }

    #[test]
    fn ufw_disabled_alone_is_not_taken_as_no_firewall() {
        let f = Fixture::new();
        f.file("/proc/self/status", USER_STATUS)
            .file(UFW_CONF, "ENABLED=no\n")
            .mkdir("/etc/firewalld");
        assert_eq!(
            reason(&probe(&f.root(), false)),
            "reading the nftables ruleset needs root; run the agent's posture probe with \
             CAP_NET_ADMIN to read it; /etc/ufw/ufw.conf says ENABLED=no, but other tools may \
             load rules, firewalld is installed but not enabled at boot"
        );
    }

    #[test]
    fn capability_is_read_from_the_effective_set() {
        let f = Fixture::new();
        f.file("/proc/self/status", ROOT_STATUS);
        assert!(has_capability(&f.root(), CAP_NET_ADMIN));
        f.file("/proc/self/status", "CapEff:\t0000000000001000\n");
        assert!(has_capability(&f.root(), CAP_NET_ADMIN));
        f.file("/proc/self/status", "CapEff:\t0000000000000fff\n");
        assert!(!has_capability(&f.root(), CAP_NET_ADMIN));
        f.file("/proc/self/status", USER_STATUS);
        assert!(!has_capability(&f.root(), CAP_NET_ADMIN));
        let empty = Fixture::new();
        assert!(!has_capability(&empty.root(), CAP_NET_ADMIN));
    }

    #[test]
    fn ufw_conf_parsing() {
        let f = Fixture::new();
        assert_eq!(ufw_state(&f.root()), Ufw::NotInstalled);
        f.file(UFW_CONF, "ENABLED=\"yes\" # managed\n");
        assert_eq!(ufw_state(&f.root()), Ufw::Enabled);
        f.file(UFW_CONF, "ENABLED=yes\nENABLED=no\n");
        assert_eq!(ufw_state(&f.root()), Ufw::Disabled);
        f.file(UFW_CONF, "#ENABLED=yes\nLOGLEVEL=low\n");
        assert_eq!(ufw_state(&f.root()), Ufw::NoSetting);
    }

    #[test]
    fn nft_ruleset_with_input_rules_or_drop_policy_is_filtering() {
        let with_rules = r#"{"nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "inet", "name": "filter", "handle": 1}},
            {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1,
                       "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
            {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4,
                      "expr": [{"match": {"op": "==", "left": {"ct": {"key": "state"}}, "right": ["established"]}},
                               {"accept": null}]}},
            {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 5,
                      "expr": [{"drop": null}]}}
        ]}"#;
        assert_eq!(
            nft_input_filtering(with_rules),
            Ok(Some(
                "nftables input chain inet filter input has 2 rules".to_owned()
            ))
        );
        let drop_policy = r#"{"nftables": [
            {"chain": {"family": "ip", "table": "fw", "name": "in", "type": "filter", "hook": "input", "policy": "drop"}}
        ]}"#;
        assert_eq!(
            nft_input_filtering(drop_policy),
            Ok(Some(
                "nftables input chain ip fw in drops by default".to_owned()
            ))
        );
    }

    #[test]
    fn nft_ruleset_without_input_filtering_is_not_a_firewall() {
        // What a container runtime typically leaves: NAT and forward rules, an empty accepting input.
        let docker_only = r#"{"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "nat"}},
            {"chain": {"family": "ip", "table": "nat", "name": "POSTROUTING", "type": "nat", "hook": "postrouting", "policy": "accept"}},
            {"rule": {"family": "ip", "table": "nat", "chain": "POSTROUTING", "expr": []}},
            {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "type": "filter", "hook": "input", "policy": "accept"}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter", "hook": "forward", "policy": "drop"}},
            {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "expr": []}}
        ]}"#;
        assert_eq!(nft_input_filtering(docker_only), Ok(None));
        assert_eq!(
            nft_input_filtering(r#"{"nftables": [{"metainfo": {}}]}"#),
            Ok(None)
        );
        assert!(nft_input_filtering("Error: Operation not permitted").is_err());
        assert!(nft_input_filtering("{}").is_err());
    }

    #[test]
    fn legacy_iptables_save_parsing() {
        let tool = "iptables-legacy-save";
        let open =
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(legacy_input_filtering(open, tool), None);
        let rules = "*nat\n-A INPUT -j X\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";
        assert_eq!(
            legacy_input_filtering(rules, tool).as_deref(),
            Some("iptables-legacy-save: filter INPUT chain has 2 rules")
        );
        let drop = "*filter\n:INPUT DROP [10:200]\nCOMMIT\n";
        assert_eq!(
            legacy_input_filtering(drop, tool).as_deref(),
            Some("iptables-legacy-save: filter INPUT chain drops by default")
        );
    }
}
