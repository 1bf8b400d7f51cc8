//! The web console in Chromium (tests/browser/console.mjs): first-admin setup with the setup
//! link the service wrote to its data folder, a role granted with a fresh touch, a recovery
//! started and approved, the help desk refused what its role does not reach, every page checked
//! by axe-core and photographed in both themes (`target/debug/screenshots/selfservice/console-*`).
//! From here: what the service recorded.

use serde_json::json;

use crate::browser::{browser_policy, person, run_scenario};
use keywarden_e2e::{Laptop, Server};

/// The entry of a listing about `person` (null when there is none).
fn entry_of(list: &serde_json::Value, person: &str) -> serde_json::Value {
    let entries = list.as_array().map(Vec::as_slice).unwrap_or_default();
    let found = entries.iter().find(|e| e["person_id"] == person);
    found.cloned().unwrap_or_default()
}

#[test]
fn first_admin_help_desk_and_roles_in_the_browser() {
    // A touch counts as fresh for one second here, so the console's sensitive actions ask for
    // one (the default is five minutes).
    let server = Server::start_browser_with(&["--fresh-touch-seconds", "1"]);
    server.population("staff", 10, "Engineering", browser_policy(json!({})));
    let hal = person(&server, "hal", "Engineering");
    let pat = person(&server, "pat", "Engineering");
    let hal_ticket = server.ticket(&hal, None);
    // A laptop that has reported, for the laptops page.
    let laptop = Laptop::new(1);
    laptop.provision(&server);
    let out = laptop.run(&["report"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = server.console_setup_link();
    assert!(
        link.starts_with(&format!("{}/console/setup#code=kwsetup_", server.origin())),
        "{link}"
    );
    run_scenario(
        &server,
        "console.mjs",
        &[
            ("KW_SETUP_LINK", &link),
            ("KW_HAL_TICKET", &hal_ticket),
            ("KW_HAL", &hal),
            ("KW_PAT", &pat),
        ],
        |at| match at {
            "admin-ready" => {
                let (s, staff) = server.admin("GET", "/api/v1/admin/staff", None);
                assert_eq!(s, 200, "{staff}");
                assert_eq!(staff[0]["user_name"], "rita@example.com", "{staff}");
                assert_eq!(staff[0]["role"], "admin");
                assert_eq!(staff[0]["source"], "setup");
            }
            "previewed" => {
                // The policy preview saved nothing.
                let (_, pops) = server.admin("GET", "/api/v1/admin/populations", None);
                assert_eq!(pops[0]["policy"]["min_authenticators"], 2, "{pops}");
            }
            "approved" => {
                // Saved after the preview.
                let (_, pops) = server.admin("GET", "/api/v1/admin/populations", None);
                assert_eq!(pops[0]["policy"]["min_authenticators"], 1, "{pops}");
                let (_, staff) = server.admin("GET", "/api/v1/admin/staff", None);
                let hal_role = entry_of(&staff, &hal);
                assert_eq!(hal_role["role"], "helpdesk", "{staff}");
                assert!(
                    hal_role["granted_by"]
                        .as_str()
                        .unwrap()
                        .starts_with("admin-console:"),
                    "{hal_role}"
                );
                let (s, recoveries) = server.admin("GET", "/api/v1/admin/recoveries", None);
                assert_eq!(s, 200, "{recoveries}");
                let r = entry_of(&recoveries, &pat);
                assert_eq!(r["kind"], "dual_approval", "{recoveries}");
                assert_eq!(r["approvals_needed"], 1, "one of two approvals given: {r}");
            }
            other => panic!("unexpected checkpoint {other}"),
        },
    );
    // The setup link worked once: it is used now.
    let (s, v) = server.admin("GET", "/api/v1/admin/staff", None);
    assert_eq!((s, v.as_array().unwrap().len()), (200, 2), "{v}");
}
