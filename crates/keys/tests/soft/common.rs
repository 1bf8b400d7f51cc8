//! Helpers shared by the soft key tests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ciborium::value::Value;
use keywarden_keys::soft::SoftKey;
use keywarden_keys::{Authenticator, KeyInfo, MadeCredential, MakeCredentialRequest, Prompt};
use keywarden_protocol::SOFT_KEY_LABEL;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::sign::Verifier;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use url::Url;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationCaList, AttestationConveyancePreference, AuthenticatorAttestationResponseRaw,
    Credential, RegisterPublicKeyCredential, RegistrationState, UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

pub(crate) const PIN: &str = "1234";
pub(crate) const RP: &str = "example.com";
pub(crate) const ORIGIN: &str = "https://example.com";

/// Counts touch prompts, to check the UI flow runs.
#[derive(Default)]
pub(crate) struct CountingPrompt(AtomicUsize);

impl CountingPrompt {
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Prompt for CountingPrompt {
    fn touch(&self, key: &KeyInfo) {
        assert_eq!(key.label, SOFT_KEY_LABEL);
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) fn key_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

pub(crate) fn client_data(kind: &str, challenge: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": kind,
        "challenge": URL_SAFE_NO_PAD.encode(challenge),
        "origin": ORIGIN,
        "crossOrigin": false,
    }))
    .unwrap()
}

pub(crate) fn request(user: &[u8], challenge: &[u8]) -> MakeCredentialRequest {
    MakeCredentialRequest {
        rp_id: RP.to_owned(),
        rp_name: "Example".to_owned(),
        user_id: user.to_vec(),
        user_name: "ada@example.com".to_owned(),
        user_display_name: "Ada".to_owned(),
        client_data_json: client_data("webauthn.create", challenge),
        exclude_credentials: vec![],
        resident_key: true,
    }
}

pub(crate) fn key_with_pin(path: &Path) -> SoftKey {
    let mut key = SoftKey::open(path).unwrap();
    key.set_pin(PIN).unwrap();
    key
}

pub(crate) fn webauthn() -> WebauthnCore {
    WebauthnCore::new_unsafe_experts_only(
        "Test",
        RP,
        vec![Url::parse(ORIGIN).unwrap()],
        Duration::from_secs(60),
        None,
        None,
    )
}

/// Start a registration ceremony as the service would: direct attestation, UV and a
/// discoverable credential required.
pub(crate) fn begin_registration(wan: &WebauthnCore) -> (Vec<u8>, RegistrationState) {
    let builder = wan
        .new_challenge_register_builder(b"user-ada", "ada@example.com", "Ada")
        .unwrap()
        .attestation(AttestationConveyancePreference::Direct)
        .user_verification_policy(UserVerificationPolicy::Required)
        .require_resident_key(true);
    let (ccr, state) = wan.generate_challenge_register(builder).unwrap();
    (ccr.public_key.challenge.as_slice().to_vec(), state)
}

pub(crate) fn registration_response(
    made: &MadeCredential,
    client_data_json: &[u8],
) -> RegisterPublicKeyCredential {
    RegisterPublicKeyCredential {
        id: URL_SAFE_NO_PAD.encode(&made.credential_id),
        raw_id: made.credential_id.clone().into(),
        response: AuthenticatorAttestationResponseRaw {
            attestation_object: made.attestation_object.clone().into(),
            client_data_json: client_data_json.to_vec().into(),
            transports: None,
        },
        type_: "public-key".to_owned(),
        extensions: Default::default(),
    }
}

/// A registration ceremony for `user-ada` as the service runs it ([`begin_registration`]):
/// the relying party, its state and the request a key answers.
pub(crate) struct Ceremony {
    pub(crate) wan: WebauthnCore,
    pub(crate) state: RegistrationState,
    pub(crate) challenge: Vec<u8>,
    pub(crate) req: MakeCredentialRequest,
}

impl Ceremony {
    pub(crate) fn begin() -> Self {
        let wan = webauthn();
        let (challenge, state) = begin_registration(&wan);
        let req = request(b"user-ada", &challenge);
        Ceremony {
            wan,
            state,
            challenge,
            req,
        }
    }

    /// `key`'s answer to the request, with `pin` and one touch.
    pub(crate) fn answer(&self, key: &mut SoftKey, pin: &str) -> MadeCredential {
        key.make_credential(&self.req, pin, &CountingPrompt::default())
            .unwrap()
    }

    /// Finish the ceremony with webauthn-rs, as the service would with `made` and the
    /// request's clientDataJSON, trusting only `ca_pem` as attestation root when given.
    pub(crate) fn finish(
        &self,
        made: &MadeCredential,
        ca_pem: Option<&str>,
    ) -> Result<Credential, WebauthnError> {
        let ca_list = ca_pem.map(|pem| AttestationCaList::try_from(pem.as_bytes()).unwrap());
        self.wan.register_credential(
            &registration_response(made, &self.req.client_data_json),
            &self.state,
            ca_list.as_ref(),
        )
    }
}

/// authData from an attestationObject, checking its top-level shape on the way.
pub(crate) fn auth_data_of(attestation_object: &[u8]) -> Vec<u8> {
    let v: Value = ciborium::de::from_reader(attestation_object).unwrap();
    let map = v.as_map().unwrap();
    let get = |k: &str| {
        map.iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v)
    };
    assert_eq!(get("fmt").and_then(Value::as_text), Some("packed"));
    get("authData").and_then(Value::as_bytes).unwrap().clone()
}

/// The credential public key, from the COSE_Key inside authData.
pub(crate) fn credential_public_key(attestation_object: &[u8]) -> PKey<openssl::pkey::Public> {
    let ad = auth_data_of(attestation_object);
    let id_len = u16::from_be_bytes([ad[53], ad[54]]) as usize;
    let cose: Value = ciborium::de::from_reader(&ad[55 + id_len..]).unwrap();
    let field = |k: i64| {
        cose.as_map()
            .unwrap()
            .iter()
            .find(|(key, _)| key.as_integer() == Some(k.into()))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(field(1).as_integer(), Some(2.into()), "kty EC2");
    assert_eq!(field(3).as_integer(), Some((-7).into()), "alg ES256");
    assert_eq!(field(-1).as_integer(), Some(1.into()), "crv P-256");
    let x = BigNum::from_slice(field(-2).as_bytes().unwrap()).unwrap();
    let y = BigNum::from_slice(field(-3).as_bytes().unwrap()).unwrap();
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let mut point = EcPoint::new(&group).unwrap();
    point
        .set_affine_coordinates_gfp(&group, &x, &y, &mut ctx)
        .unwrap();
    PKey::from_ec_key(EcKey::from_public_key(&group, &point).unwrap()).unwrap()
}

pub(crate) fn verify_es256(
    key: &PKey<openssl::pkey::Public>,
    auth_data: &[u8],
    client_data_json: &[u8],
    sig: &[u8],
) -> bool {
    let mut v = Verifier::new(MessageDigest::sha256(), key).unwrap();
    v.update(auth_data).unwrap();
    v.update(&Sha256::digest(client_data_json)).unwrap();
    v.verify(sig).unwrap_or(false)
}
