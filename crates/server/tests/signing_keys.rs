//! The webhook signing key lives in a file outside the database (mode 0600): a new installation
//! creates it, an older one moves its key out and wipes it from the database, and a file others
//! may read, a file holding another key than the one published, or no file where the database
//! says the key is outside are refused at start, changing nothing.
#![allow(clippy::unwrap_used)]

mod common;

use common::App;
use keywarden_server::service_keys::{KeyFiles, Loaded, ServiceKeys, WEBHOOK_KEY_ID};

both_backends!(
    a_new_installation_keeps_its_key_in_a_file_of_its_own,
    an_older_installation_moves_its_key_out_of_the_database,
    a_wrong_or_careless_key_file_is_refused
);

async fn stored(app: &App) -> Vec<String> {
    app.rows(&format!(
        "SELECT id || ':' || public_key || ':' || private_key FROM service_keys WHERE id = '{WEBHOOK_KEY_ID}'"
    ))
    .await
}

/// The webhook key at `webhook`, the checkpoint key beside it.
fn files(webhook: &std::path::Path) -> KeyFiles {
    KeyFiles {
        webhook: webhook.to_owned(),
        checkpoint: webhook.with_file_name("audit-checkpoint.key"),
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn a_new_installation_keeps_its_key_in_a_file_of_its_own(app: App) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("webhook-signing.key");
    let (keys, loaded) = ServiceKeys::load(&app.state.db, &files(&path), app.now())
        .await
        .unwrap();
    assert_eq!(loaded, [Loaded::Created, Loaded::Created]);
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    let public = keys.webhook_public();
    assert_eq!(
        stored(&app).await,
        vec![format!("{WEBHOOK_KEY_ID}:{public}:")],
        "the database has the public half only"
    );
    let seed = std::fs::read_to_string(&path).unwrap();
    assert!(
        app.rows("SELECT private_key FROM service_keys")
            .await
            .iter()
            .all(|k| k.is_empty() && !seed.is_empty()),
        "no private key is in the database (webhook and audit checkpoint keys)"
    );
    #[cfg(unix)]
    assert_eq!(mode(&files(&path).checkpoint), 0o600);
    // A restart (or a second replica given the same file) signs with the same key.
    let (again, loaded) = ServiceKeys::load(&app.state.db, &files(&path), app.now())
        .await
        .unwrap();
    assert_eq!(loaded, [Loaded::FromFile, Loaded::FromFile]);
    assert_eq!(again.webhook_public(), public);
}

async fn an_older_installation_moves_its_key_out_of_the_database(app: App) {
    // What an earlier version stored: the key pair in the database.
    let old = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let public = keywarden_server::secrets::b64(old.verifying_key().as_bytes());
    let private = keywarden_server::secrets::b64(&old.to_bytes());
    sqlx::query(
        "INSERT INTO service_keys (id, public_key, private_key, created_at) VALUES ($1, $2, $3, 0)",
    )
    .bind(WEBHOOK_KEY_ID)
    .bind(&public)
    .bind(&private)
    .execute(&app.state.db)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-signing.key");
    let (keys, loaded) = ServiceKeys::load(&app.state.db, &files(&path), app.now())
        .await
        .unwrap();
    assert_eq!(loaded[0], Loaded::MovedOut);
    assert_eq!(
        keys.webhook_public(),
        public,
        "receivers keep the key they know"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), private);
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        stored(&app).await,
        vec![format!("{WEBHOOK_KEY_ID}:{public}:")],
        "the private half is wiped from the database"
    );
}

async fn a_wrong_or_careless_key_file_is_refused(app: App) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-signing.key");
    ServiceKeys::load(&app.state.db, &files(&path), app.now())
        .await
        .unwrap();
    let before = stored(&app).await;
    let refused = |e: keywarden_server::Error| e.to_string();

    // Another replica's start without the file.
    let missing = dir.path().join("elsewhere.key");
    let e = refused(
        ServiceKeys::load(&app.state.db, &files(&missing), app.now())
            .await
            .unwrap_err(),
    );
    assert!(e.contains("--webhook-key-file"), "{e}");
    assert!(!missing.exists(), "no key was made up in its place");

    // A file holding another key than the one the others publish.
    let other = dir.path().join("other.key");
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let mut f = keywarden_server::service_keys::new_secret_file(&other).unwrap();
    std::io::Write::write_all(
        &mut f,
        format!("{}\n", keywarden_server::secrets::b64(&stranger.to_bytes())).as_bytes(),
    )
    .unwrap();
    let e = refused(
        ServiceKeys::load(&app.state.db, &files(&other), app.now())
            .await
            .unwrap_err(),
    );
    assert!(e.contains("same key file"), "{e}");

    // A file others may read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = refused(
            ServiceKeys::load(&app.state.db, &files(&path), app.now())
                .await
                .unwrap_err(),
        );
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    // A file that holds no key.
    let junk = dir.path().join("junk.key");
    let mut f = keywarden_server::service_keys::new_secret_file(&junk).unwrap();
    std::io::Write::write_all(&mut f, b"not a key\n").unwrap();
    let e = refused(
        ServiceKeys::load(&app.state.db, &files(&junk), app.now())
            .await
            .unwrap_err(),
    );
    assert!(e.contains("does not hold a signing key"), "{e}");

    assert_eq!(stored(&app).await, before, "the refusals changed nothing");
    ServiceKeys::load(&app.state.db, &files(&path), app.now())
        .await
        .unwrap();
}
