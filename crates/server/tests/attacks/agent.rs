//! The agent's own doors: a service (or whoever answers at its address) asking the agent to sign
//! for another relying party or origin, and the agent's request counter after a crash or with
//! several of its processes sending at once.
//!
//! These drive the real agent (`keywarden-agent`, blocking HTTP) against the service served on
//! loopback ports, so each runs its blocking part on a blocking thread.

use std::path::PathBuf;
use std::sync::Arc;

use keywarden_agent::config::{Config, Paths};
use keywarden_agent::keys::Keyring;
use keywarden_agent::{Agent, Error};
use keywarden_protocol::{AssertionOptions, EnrolBeginRequest, EnrolBeginResponse, StepUpRequest};
use keywarden_server::{AppState, Clock, Settings};

use crate::common::App;
use crate::snapshot;

const PIN: &str = "123456";

/// Serve `router` on a loopback port; its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

/// The service over the same database, configured for another relying party and origin: what
/// the agent meets when the address it talks to answers for someone else (a hostile or
/// misconfigured deployment, a hijacked name).
async fn serve_other_rp(app: &App, rp_id: &str, origin: &str) -> String {
    let clock: Arc<dyn Clock> = app.clock.clone();
    let state = AppState::new(
        app.state.db.clone(),
        Settings::new(rp_id, url::Url::parse(origin).unwrap()),
        clock,
        (*app.state.keys).clone(),
    )
    .unwrap();
    serve(keywarden_server::router(state)).await
}

/// A laptop: the agent's folders and one software key (test/demo).
struct Laptop {
    _home: tempfile::TempDir,
    agent: Arc<Agent>,
    key_file: PathBuf,
}

impl Laptop {
    fn new() -> Laptop {
        let home = tempfile::tempdir().unwrap();
        let key_file = home.path().join("soft-key.json");
        // In the tests' attestation batch, whose root every test service trusts.
        keywarden_keys::soft::SoftKey::create_in_batch(
            &key_file,
            &keywarden_keys::soft::SoftKeyOptions::default(),
            crate::common::soft_key_batch(),
        )
        .unwrap();
        let ring = Keyring::new().with(Box::new(
            keywarden_agent::keys::soft::SoftKeyProvider::new(vec![key_file.clone()]),
        ));
        let agent = Agent::new(Paths::under(home.path()), ring);
        // The key is plugged in (its state file exists from here on).
        assert_eq!(agent.keys().unwrap().len(), 1);
        Laptop {
            agent: Arc::new(agent),
            key_file,
            _home: home,
        }
    }

    /// Run a blocking agent call on a blocking thread.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Agent) -> T + Send + 'static) -> T {
        let agent = self.agent.clone();
        tokio::task::spawn_blocking(move || f(&agent))
            .await
            .unwrap()
    }

    /// Point the agent at another address (as a changed name or a redirected network would).
    fn talk_to(&self, base: &str) {
        let paths = self.agent.paths();
        let mut cfg = Config::load(paths).unwrap().unwrap();
        cfg.server_url = base.to_owned();
        cfg.save(paths).unwrap();
    }

    /// The software key's whole state: unchanged means the key made, signed and counted
    /// nothing.
    fn key_state(&self) -> String {
        std::fs::read_to_string(&self.key_file).unwrap()
    }
}

/// A provisioned laptop talking to the service at `base` (the service's clock set to the real
/// time first: the agent signs with it).
async fn provisioned(app: &App, base: &str) -> Laptop {
    let token = app.provisioning_token().await;
    let laptop = Laptop::new();
    let base = base.to_owned();
    let cfg = laptop
        .run(move |a| a.provision(&base, &token, false).unwrap())
        .await;
    assert_eq!(cfg.rp_id.as_deref(), Some("keywarden.localhost"));
    assert_eq!(cfg.origin.as_deref(), Some("https://keywarden.localhost"));
    laptop
}

fn prompts() -> keywarden_agent::enrol::StepPrompts {
    keywarden_agent::enrol::StepPrompts::new(Some(PIN.into()), Some(PIN.into()), Box::new(|_| {}))
}

/// The agent refused `r` as another relying party (`asked`), saying nothing was sent, before
/// anything reached the key: the key's state (its counter included) is still `key_before`.
fn refused_untouched<T: std::fmt::Debug>(
    r: &Result<T, Error>,
    asked: &str,
    laptop: &Laptop,
    key_before: &str,
) {
    match r {
        Err(e @ Error::RelyingPartyMismatch { .. }) => {
            let ui = e.to_ui();
            assert_eq!(ui.code, keywarden_protocol::ErrorCode::RpMismatch);
            assert!(ui.message.contains(asked), "{}", ui.message);
            assert!(ui.message.contains("Nothing was sent"), "{}", ui.message);
        }
        other => panic!("expected the agent to refuse another relying party, got {other:?}"),
    }
    assert!(
        laptop.key_state() == key_before,
        "{asked}: the key was used (its state changed)"
    );
}

/// Other relying parties a service might ask for: another domain, and the organisation's RP id
/// with an origin that is not the organisation's.
const OTHERS: &[(&str, &str)] = &[
    ("evil.localhost", "https://evil.localhost"),
    ("keywarden.localhost", "https://phish.keywarden.localhost"),
];

async fn the_agent_refuses_to_make_a_credential_for_another_relying_party(mut app: App) {
    app.set_clock(keywarden_agent::now_ms()).await;
    let legit = serve(app.router.clone()).await;
    let laptop = provisioned(&app, &legit).await;
    let ada = app.person("ada").await;

    for (rp_id, origin) in OTHERS {
        let other = serve_other_rp(&app, rp_id, origin).await;
        laptop.talk_to(&other);
        // The other service opens a ceremony for its relying party (its own doing).
        let ticket = app.ticket_secret(&ada).await;
        let begin: EnrolBeginResponse = laptop
            .run(move |a| {
                a.call_signed(
                    "/api/v1/agent/enrolments",
                    &EnrolBeginRequest {
                        ticket,
                        step_up: None,
                    },
                )
                .unwrap()
            })
            .await;
        assert_eq!(&begin.options.rp_id, rp_id);
        let key_before = laptop.key_state();
        let before = snapshot(&app).await;
        // The agent refuses it: nothing reaches the key, nothing goes back to the service.
        let refused = laptop
            .run(move |a| {
                let key = a.keys().unwrap()[0].id.clone();
                a.enrol_key(&begin, Some(&key), &prompts())
            })
            .await;
        refused_untouched(&refused, origin, &laptop, &key_before);
        assert_eq!(snapshot(&app).await, before, "{rp_id}: nothing was sent");

        // The wizard's and the CLI's way: refused as soon as the ceremony arrives.
        let ticket = app.ticket_secret(&ada).await;
        let refused = laptop
            .run(move |a| keywarden_agent::enrol::Session::open(a, &ticket))
            .await;
        refused_untouched(&refused, origin, &laptop, &key_before);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM credentials").await, 0);

    // The organisation's own service still enrols the key.
    laptop.talk_to(&legit);
    let ticket = app.ticket_secret(&ada).await;
    let done = laptop
        .run(move |a| {
            let mut session = keywarden_agent::enrol::Session::open(a, &ticket).unwrap();
            session.enrol(a, None, &prompts()).unwrap()
        })
        .await;
    assert_eq!(done.result.credential.person_id, ada);
    assert_eq!(app.count("SELECT COUNT(*) FROM credentials").await, 1);
}

async fn the_agent_refuses_to_sign_a_challenge_for_another_relying_party(mut app: App) {
    app.set_clock(keywarden_agent::now_ms()).await;
    let legit = serve(app.router.clone()).await;
    let laptop = provisioned(&app, &legit).await;
    let ada = app.person("ada").await;
    let ticket = app.ticket_secret(&ada).await;
    let key_id = laptop
        .run(move |a| {
            let mut session = keywarden_agent::enrol::Session::open(a, &ticket).unwrap();
            session.enrol(a, None, &prompts()).unwrap().key.id
        })
        .await;

    for (rp_id, origin) in OTHERS {
        let other = serve_other_rp(&app, rp_id, origin).await;
        laptop.talk_to(&other);
        let options: AssertionOptions = laptop
            .run(|a| {
                a.call_signed(
                    "/api/v1/agent/step-up",
                    &StepUpRequest {
                        purpose: "sign_in".into(),
                    },
                )
                .unwrap()
            })
            .await;
        assert_eq!(&options.rp_id, rp_id);
        let key_before = laptop.key_state();
        let before = snapshot(&app).await;
        let key = key_id.clone();
        let refused = laptop
            .run(move |a| {
                keywarden_agent::stepup::answer(
                    a,
                    &key,
                    &options,
                    PIN,
                    &keywarden_agent::keys::SilentPrompt,
                )
            })
            .await;
        refused_untouched(&refused, origin, &laptop, &key_before);
        assert_eq!(snapshot(&app).await, before, "{rp_id}: nothing was sent");

        // Signing in ("Lost a key?") through that service: refused the same way.
        let key = key_id.clone();
        let refused = laptop
            .run(move |a| {
                keywarden_agent::stepup::sign_in(a, &key, PIN, &keywarden_agent::keys::SilentPrompt)
            })
            .await;
        refused_untouched(&refused, origin, &laptop, &key_before);
    }

    // The organisation's own service: signing in works.
    laptop.talk_to(&legit);
    let who = laptop
        .run(move |a| {
            keywarden_agent::stepup::sign_in(a, &key_id, PIN, &keywarden_agent::keys::SilentPrompt)
                .unwrap()
        })
        .await;
    assert_eq!(who.person.id, ada);
}

/// Send one signed report; the service's answer.
fn send_report(agent: &Agent) -> Result<serde_json::Value, Error> {
    agent.call_signed(
        "/api/v1/agent/reports",
        &crate::common::report_body(keywarden_agent::now_ms(), true),
    )
}

async fn a_lost_or_damaged_request_counter_does_not_lock_the_laptop_out(mut app: App) {
    app.set_clock(keywarden_agent::now_ms()).await;
    let legit = serve(app.router.clone()).await;
    let laptop = provisioned(&app, &legit).await;
    let seq_file = laptop.agent.paths().seq_file();
    laptop.run(|a| send_report(a).unwrap()).await;
    // A crash mid-write used to leave an empty file, and the agent started again at 1, which
    // the service refused as a replay for ever. A counter restored from an old backup, or
    // garbled, or gone, is the same.
    for damage in [
        Some(""),
        Some("0"),
        Some("1"),
        Some("\0\0\0"),
        Some("12ab"),
        None,
    ] {
        match damage {
            Some(text) => std::fs::write(&seq_file, text).unwrap(),
            None => std::fs::remove_file(&seq_file).unwrap(),
        }
        let sent = laptop.run(send_report).await;
        assert!(sent.is_ok(), "counter {damage:?}: {sent:?}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM reports").await, 7);
}

async fn the_window_the_tray_and_the_cli_sending_at_once_are_all_accepted(mut app: App) {
    app.set_clock(keywarden_agent::now_ms()).await;
    let legit = serve(app.router.clone()).await;
    let laptop = provisioned(&app, &legit).await;
    // Three processes of one person (window, tray, CLI): three agents over the same folders,
    // each on its own thread, each sending as fast as it can.
    let paths = laptop.agent.paths().clone();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let agent = Agent::new(paths.clone(), Keyring::new());
            tokio::task::spawn_blocking(move || {
                (0..8).map(|_| send_report(&agent)).collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for r in h.await.unwrap() {
            assert!(r.is_ok(), "every request is accepted: {r:?}");
        }
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM reports").await, 24);
}

crate::both_backends!(
    the_agent_refuses_to_make_a_credential_for_another_relying_party,
    the_agent_refuses_to_sign_a_challenge_for_another_relying_party,
    a_lost_or_damaged_request_counter_does_not_lock_the_laptop_out,
    the_window_the_tray_and_the_cli_sending_at_once_are_all_accepted,
);
