//! The console's page frame: one stylesheet and one script from the service itself (the strict
//! Content-Security-Policy of the self-service pages holds: no inline script or style), a skip
//! link, landmarks, the signed-in person and role, and light and dark themes (the system's
//! choice, or the one picked with the theme button).

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use serde::Deserialize;

use crate::auth::{AdminOrAuditor, AnyStaff, Caller, Role, Roles};
use crate::csf::esc;
use crate::error::Error;
use crate::secrets;

/// Navigation entries: path, label, the roles whose pages they are (the same as the pages'
/// extractors admit).
const NAV: &[(&str, &str, &[Role])] = &[
    ("/console", "Overview", AnyStaff::ALLOWED),
    ("/console/people", "People", AnyStaff::ALLOWED),
    ("/console/laptops", "Laptops", AnyStaff::ALLOWED),
    ("/console/policy", "Policy", AnyStaff::ALLOWED),
    ("/console/exceptions", "Exceptions", AnyStaff::ALLOWED),
    ("/console/keys", "Keys", AdminOrAuditor::ALLOWED),
    ("/console/audit", "Audit", AdminOrAuditor::ALLOWED),
    ("/console/staff", "Staff", AdminOrAuditor::ALLOWED),
];

/// A whole console page. `current` is the navigation entry to mark.
pub fn page(title: &str, current: &str, caller: Option<&Caller>, main: &str) -> Html<String> {
    let (meta, header_right, nav) = match caller.and_then(|c| c.console.as_ref().map(|s| (c, s))) {
        Some((c, s)) => {
            let links: String = NAV
                .iter()
                .filter(|(_, _, roles)| roles.contains(&c.role))
                .map(|(href, label, _)| {
                    let cur = if *href == current {
                        " aria-current=\"page\""
                    } else {
                        ""
                    };
                    format!("<li><a href=\"{href}\"{cur}>{label}</a></li>")
                })
                .collect();
            (
                format!("<meta name=\"kw-csrf\" content=\"{}\">", esc(&s.csrf)),
                format!(
                    "<span class=\"who\">{} <span class=\"role\">{}</span></span>\
                     <form method=\"post\" action=\"/console/sign-out\" class=\"inline\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                     <button type=\"submit\" class=\"link\">Sign out</button></form>",
                    esc(&s.display_name),
                    c.role.as_str(),
                    esc(&s.csrf)
                ),
                format!("<nav aria-label=\"Console\"><ul>{links}</ul></nav>"),
            )
        }
        None => (String::new(), String::new(), String::new()),
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">{meta}\
         <title>{title} · Keywarden console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script type=\"module\" src=\"/console/assets/console.js\"></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><a class=\"brand\" href=\"/console\">Keywarden <span>console</span></a>{nav}\
         <div class=\"account\">{header_right}\
         <button type=\"button\" class=\"link\" data-action=\"theme\" aria-pressed=\"false\">Dark theme</button></div></header>\
         <main id=\"main\" tabindex=\"-1\">{main}</main></body></html>",
        title = esc(title),
    ))
}

/// The answer to a page request the caller may not have: not signed in goes to the sign-in
/// page; anything else is a page saying why, with the API's status.
pub fn refused(e: &Error, caller: Option<&Caller>) -> Response {
    let (status, code, message) = e.parts();
    if status == StatusCode::UNAUTHORIZED {
        return Redirect::to("/console/sign-in").into_response();
    }
    let body = format!(
        "<h1>Not here</h1><p id=\"status\" role=\"alert\" data-code=\"{}\">{}</p>\
         <p><a href=\"/console\">Back to the overview</a> · <a href=\"/console/sign-in\">Sign in as someone else</a></p>",
        esc(code.as_str()),
        esc(&message)
    );
    (status, page("Not allowed", "", caller, &body)).into_response()
}

/// A time for people: `2026-12-05T10:30Z`, or a dash.
pub fn when(ms: Option<i64>) -> String {
    ms.map_or_else(|| "—".to_owned(), secrets::fmt_time)
}

/// How long ago `since` was, in days (or hours under a day).
pub fn age(now: i64, since: i64) -> String {
    let h = (now - since).max(0) / 3_600_000;
    if h < 24 {
        format!("{h} h")
    } else {
        format!("{} d", h / 24)
    }
}

/// A status as a labelled badge (text, not colour alone).
pub fn badge(status: &str) -> String {
    let (class, text) = match status {
        "compliant" => ("ok", "compliant"),
        "under_exception" => ("warn", "under exception"),
        "below_minimum" => ("bad", "below minimum"),
        "single_device_class" => ("bad", "one device class"),
        "no_authenticator" => ("bad", "no authenticator"),
        "active" | "on" => ("ok", status),
        "off" => ("bad", "off"),
        "suspended" => ("warn", "suspended"),
        "revoked" => ("bad", "revoked"),
        "issued" => ("warn", "issued, not yet activated"),
        "expired_before_activation" => ("bad", "expired before activation"),
        other => ("", other),
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
}

/// A list's page links: "Page 2 of 7 (340 people) · Previous · Next · Export CSV". `link` gives
/// the address of a page (with the list's filters); the CSV export is `link(current)` plus
/// `format=csv`.
pub fn pager(
    current: usize,
    total: usize,
    per_page: usize,
    what: &str,
    link: impl Fn(usize) -> String,
) -> String {
    let pages = total.div_ceil(per_page).max(1);
    let mut out = format!("<p class=\"pager\">Page {current} of {pages} ({total} {what})");
    if current > 1 {
        out.push_str(&format!(
            " · <a href=\"{}\" rel=\"prev\">Previous</a>",
            link(current - 1)
        ));
    }
    if current < pages {
        out.push_str(&format!(
            " · <a href=\"{}\" rel=\"next\">Next</a>",
            link(current + 1)
        ));
    }
    out.push_str(&format!(
        " · <a href=\"{}&amp;format=csv\">Export CSV</a></p>",
        link(current)
    ));
    out
}

/// A CSV download named `name`: the header line, then each row's fields (quoted where needed;
/// a field a spreadsheet would read as a formula is made text).
pub fn csv(name: &str, header: &str, rows: impl IntoIterator<Item = Vec<String>>) -> Response {
    let mut body = format!("{header}\n");
    for row in rows {
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        body.push_str(&fields.join(","));
        body.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn csv_field(s: &str) -> String {
    // A leading =, +, - or @ would be a formula in a spreadsheet: quote it as text.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A list's query: a search text, a state, the page, and `format=csv` for every match.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Part of a name.
    #[serde(default)]
    pub q: String,
    /// One state.
    pub state: Option<String>,
    /// `1`: only people below policy (the people list).
    pub exposed: Option<String>,
    /// Page, from 1.
    pub page: Option<usize>,
    /// `csv` for every match as CSV.
    pub format: Option<String>,
}

/// Rows a list shows a page.
pub const LIST_PAGE: usize = 50;

/// `s` for a query string.
pub fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A list's filter form: a search box (when `search` names what it matches), a state choice
/// (when there are `states`), and `extra` (already HTML).
pub fn filters(
    action: &str,
    search: &str,
    q: &str,
    states: &[(&str, &str)],
    state: Option<&str>,
    extra: &str,
) -> String {
    let options: String = states
        .iter()
        .map(|(value, label)| {
            let sel = if state.unwrap_or("") == *value {
                " selected"
            } else {
                ""
            };
            format!("<option value=\"{value}\"{sel}>{label}</option>")
        })
        .collect();
    let search = if search.is_empty() {
        String::new()
    } else {
        format!(
            "<label for=\"q\">Search</label><input id=\"q\" name=\"q\" value=\"{}\" placeholder=\"{search}\">",
            esc(q)
        )
    };
    let select = if states.is_empty() {
        String::new()
    } else {
        format!("<label for=\"state\">State</label><select id=\"state\" name=\"state\">{options}</select>")
    };
    format!(
        "<form method=\"get\" action=\"{action}\" class=\"filters\" role=\"search\">{search}{select}{extra}\
         <button type=\"submit\">Filter</button></form>"
    )
}

/// A one-button action: the page's script sends `method path` to the API (with a fresh touch
/// when the API asks for one) and reloads the page.
pub fn action_button(method: &str, path: &str, label: &str) -> String {
    format!(
        "<form data-api=\"{} {}\" data-done=\"reload\" class=\"inline\"><button type=\"submit\">{}</button></form>",
        esc(method),
        esc(path),
        esc(label)
    )
}
