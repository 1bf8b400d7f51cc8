//! Behaviour of the software authenticator, checked against webauthn-rs and openssl.
#![cfg(feature = "soft")]
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test
//!
//! `common` holds the helpers (a counting prompt, WebAuthn requests, webauthn-rs set-up, parsing
//! authenticatorData); the tests are grouped by what they pin: the state file and removal, the
//! PIN, and credentials (attestation, assertions, credential management).

mod common;
mod config;
mod credentials;
mod pin;
mod probe;
mod state;
