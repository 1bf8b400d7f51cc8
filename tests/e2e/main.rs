//! End-to-end tests: the real `keywarden-server` binary on 127.0.0.1 with a fresh SQLite
//! database, the real `keywarden` agent binary with software keys (test/demo), and the real
//! desktop app in a window under Xvfb.

#![allow(clippy::unwrap_used)]
mod add_key;
mod admin_pages;
mod app;
mod batches;
mod browser;
mod chaos;
mod cli_parity;
mod console;
mod first_start;
mod flow;
mod full_disk;
mod issuing;
mod key_policy;
mod lost_window;
mod offboarding;
mod openapi;
mod recovery;
mod refusals;
mod tls;
mod tray;
mod wizard;
mod wizard_web_link;
