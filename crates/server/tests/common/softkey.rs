//! The software key (test/demo) with the tests' batch attestation: credentials and assertions, and
//! the same answers shaped as a browser's `PublicKeyCredential.toJSON()`.

use super::browser::*;
use serde_json::{json, Value};

/// Label of the trust anchor every test [`App`] has: the root of the tests' soft keys.
pub const SOFT_KEY_ROOT_LABEL: &str = "software key (test/demo) root";

/// The attestation batch every [`SoftKey`] of this test process belongs to.
pub fn soft_key_batch() -> &'static keywarden_keys::soft::AttestationBatch {
    keywarden_keys::soft::AttestationBatch::shared().unwrap()
}

/// A software key (test/demo) in its own folder, attesting with the tests' batch certificate
/// (so every test [`App`] trusts it).
pub struct SoftKey {
    pub dir: tempfile::TempDir,
}

impl SoftKey {
    pub fn new() -> SoftKey {
        Self::with_options(&keywarden_keys::soft::SoftKeyOptions::default())
    }

    /// A soft key created with `options` (e.g. a longer minimum PIN length).
    pub fn with_options(options: &keywarden_keys::soft::SoftKeyOptions) -> SoftKey {
        let dir = tempfile::tempdir().unwrap();
        keywarden_keys::soft::SoftKey::create_in_batch(
            dir.path().join("key.json"),
            options,
            soft_key_batch(),
        )
        .unwrap();
        SoftKey { dir }
    }

    /// A soft key with its own attestation root, which no test [`App`] trusts.
    pub fn untrusted() -> SoftKey {
        let dir = tempfile::tempdir().unwrap();
        keywarden_keys::soft::SoftKey::open(dir.path().join("key.json")).unwrap();
        SoftKey { dir }
    }

    /// The root this key's attestation chain leads to, PEM.
    pub fn root_pem(&self) -> String {
        keywarden_keys::soft::SoftKey::open(self.dir.path().join("key.json"))
            .unwrap()
            .attestation_ca_pem()
    }

    /// Answer a ceremony the way the agent does (sets PIN 123456 on first use), leaving the
    /// key's settings as they are (as an agent that does not apply on-key policy, or a key that
    /// cannot take it).
    pub fn make_credential(&self, begin: &Value) -> Value {
        let mut begin = begin.clone();
        if let Some(b) = begin.as_object_mut() {
            b.remove("key_policy");
        }
        self.make_credential_applying_policy(&begin, "123456", "123456")
    }

    /// Answer a ceremony the way the agent does, putting the ceremony's on-key policy on the
    /// key first: `pin` is set on first use (or typed), `new_pin` given when the key asks for a
    /// new one.
    pub fn make_credential_applying_policy(
        &self,
        begin: &Value,
        pin: &str,
        new_pin: &str,
    ) -> Value {
        use keywarden_keys::soft::SoftKey as Key;
        let begin: keywarden_protocol::EnrolBeginResponse =
            serde_json::from_value(begin.clone()).unwrap();
        let mut key = Key::open(self.dir.path().join("key.json")).unwrap();
        let prompts = keywarden_agent::enrol::StepPrompts::new(
            Some(pin.into()),
            Some(new_pin.into()),
            Box::new(|_| {}),
        );
        let req = keywarden_agent::enrol::make_credential(&mut key, &begin, &prompts).unwrap();
        serde_json::to_value(req).unwrap()
    }
}

impl SoftKey {
    /// A copy of this key's state (a clone of the key, for counter-replay tests).
    pub fn clone_key(&self) -> SoftKey {
        let copy = SoftKey::new();
        std::fs::copy(
            self.dir.path().join("key.json"),
            copy.dir.path().join("key.json"),
        )
        .unwrap();
        copy
    }

    /// Answer a step-up challenge (PIN 123456) the way the agent does.
    pub fn assert(&self, options: &Value) -> Value {
        self.assert_with_pin(options, "123456")
    }

    /// Answer a step-up challenge with `pin` the way the agent does.
    pub fn assert_with_pin(&self, options: &Value, pin: &str) -> Value {
        use keywarden_keys::soft::SoftKey as Key;
        let options: keywarden_protocol::AssertionOptions =
            serde_json::from_value(options.clone()).unwrap();
        let mut key = Key::open(self.dir.path().join("key.json")).unwrap();
        let step_up = keywarden_agent::stepup::get_assertion(
            &mut key,
            &options,
            pin,
            &keywarden_keys::SilentPrompt,
        )
        .unwrap();
        serde_json::to_value(step_up).unwrap()
    }

    /// Answer a step-up challenge with a touch and no PIN (user verification flag clear).
    pub fn assert_without_uv(&self, options: &Value) -> Value {
        use base64::Engine as _;
        use keywarden_keys::soft::SoftKey as Key;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let options: keywarden_protocol::AssertionOptions =
            serde_json::from_value(options.clone()).unwrap();
        let mut key = Key::open(self.dir.path().join("key.json")).unwrap();
        let req = keywarden_keys::GetAssertionRequest {
            rp_id: options.rp_id.clone(),
            client_data_json: keywarden_agent::stepup::client_data_json(&options),
            allow_credentials: Vec::new(),
        };
        let a = key
            .danger_assertion_without_user_verification(&req, &keywarden_keys::SilentPrompt)
            .unwrap();
        serde_json::json!({
            "challenge_id": options.challenge_id,
            "assertion": {
                "credential_id": b64(&a.credential_id),
                "authenticator_data": b64(&a.authenticator_data),
                "client_data_json": b64(&req.client_data_json),
                "signature": b64(&a.signature),
                "user_handle": a.user_handle.as_deref().map(b64),
            },
        })
    }

    /// The key itself (its PIN, its settings).
    pub fn open(&self) -> keywarden_keys::soft::SoftKey {
        keywarden_keys::soft::SoftKey::open(self.dir.path().join("key.json")).unwrap()
    }
}

impl SoftKey {
    /// Answer `navigator.credentials.create` options (WebAuthn JSON) as a browser would
    /// (`toJSON()` of the new credential), from the page's origin.
    pub fn browser_create(&self, pk: &Value) -> Value {
        // What a browser reports for what was asked: this device's own authenticator, or a
        // phone across devices.
        if pk["authenticatorSelection"]["authenticatorAttachment"] == "cross-platform" {
            self.browser_create_as(pk, "cross-platform", &["hybrid", "internal"])
        } else {
            self.browser_create_as(pk, "platform", &["internal"])
        }
    }

    /// [`SoftKey::browser_create`] with what the browser reports about the authenticator.
    pub fn browser_create_as(&self, pk: &Value, attachment: &str, transports: &[&str]) -> Value {
        let begin = json!({
            "enrolment_id": "browser",
            "ceremony_id": "browser",
            "session_expires_at_ms": 0,
            "person": {"id": "p", "user_name": pk["user"]["name"], "display_name": pk["user"]["displayName"]},
            "options": {
                "challenge": pk["challenge"],
                "rp_id": pk["rp"]["id"],
                "rp_name": pk["rp"]["name"],
                "origin": ORIGIN,
                "user_id": pk["user"]["id"],
                "user_name": pk["user"]["name"],
                "user_display_name": pk["user"]["displayName"],
                "algorithms": pk["pubKeyCredParams"].as_array().unwrap().iter().map(|p| p["alg"].clone()).collect::<Vec<_>>(),
                "exclude_credentials": pk["excludeCredentials"].as_array().map(|a| a.iter().map(|c| c["id"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
                "user_verification_required": true,
                "resident_key_required": true,
                "attestation": "direct",
                "timeout_ms": 60000,
            },
            "active_authenticators": 0,
            "required_authenticators": 0,
        });
        let made = self.make_credential(&begin);
        json!({
            "id": made["credential_id"],
            "rawId": made["credential_id"],
            "type": "public-key",
            "authenticatorAttachment": attachment,
            "response": {
                "attestationObject": made["attestation_object"],
                "clientDataJSON": made["client_data_json"],
                "transports": transports,
            },
            "clientExtensionResults": {},
        })
    }

    /// Answer `navigator.credentials.get` (a challenge from the self-service endpoints) as a
    /// browser would.
    pub fn browser_get(&self, challenge: &Value) -> Value {
        let pk = &challenge["public_key"];
        let step_up = self.assert(&json!({
            "challenge_id": challenge["challenge_id"],
            "challenge": pk["challenge"],
            "rp_id": pk["rpId"],
            "origin": ORIGIN,
            "allow_credentials": [],
            "user_verification_required": true,
            "timeout_ms": 60000,
        }));
        let a = &step_up["assertion"];
        json!({
            "id": a["credential_id"],
            "rawId": a["credential_id"],
            "type": "public-key",
            "response": {
                "authenticatorData": a["authenticator_data"],
                "clientDataJSON": a["client_data_json"],
                "signature": a["signature"],
                "userHandle": a["user_handle"],
            },
            "clientExtensionResults": {},
        })
    }
}
