//! Helpers over the hid backend: a credential for another relying party, signature checks, expected
//! errors, and the CLI's key list.

use crate::env::Env;
use crate::OTHER_RP;
use anyhow::{anyhow, bail, ensure, Result};
use keywarden_keys::{Authenticator, Error as KeyError, MakeCredentialRequest, SilentPrompt};
use serde_json::Value;

pub(crate) fn make_other_credential(
    key: &mut dyn Authenticator,
    user: &[u8],
    pin: &str,
) -> keywarden_keys::Result<(Vec<u8>, Vec<u8>)> {
    let made = key.make_credential(
        &MakeCredentialRequest {
            rp_id: OTHER_RP.into(),
            rp_name: "Another site".into(),
            user_id: user.to_vec(),
            user_name: "someone".into(),
            user_display_name: "Someone".into(),
            client_data_json:
                br#"{"type":"webauthn.create","challenge":"AAAA","origin":"https://other.example"}"#
                    .to_vec(),
            exclude_credentials: Vec::new(),
            resident_key: true,
        },
        pin,
        &SilentPrompt,
    )?;
    Ok((made.credential_id, made.attestation_object))
}

/// The credential public key (x, y) inside an attestationObject's authData.
pub(crate) fn credential_public_key(attestation_object: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let v: ciborium::Value = ciborium::from_reader(attestation_object)?;
    let auth_data = v
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("authData")))
        .and_then(|(_, v)| v.as_bytes())
        .ok_or_else(|| anyhow!("no authData"))?;
    let (x, y) = keywarden_keys::attestation::attested_es256_coordinates(auth_data)
        .map_err(|e| anyhow!(e))?;
    Ok((x.to_vec(), y.to_vec()))
}

pub(crate) fn verify_es256(x: &[u8], y: &[u8], message: &[u8], signature: &[u8]) -> Result<bool> {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)?;
    let mut ctx = BigNumContext::new()?;
    let mut point = EcPoint::new(&group)?;
    let (bx, by) = (BigNum::from_slice(x)?, BigNum::from_slice(y)?);
    point.set_affine_coordinates_gfp(&group, &bx, &by, &mut ctx)?;
    let key = openssl::pkey::PKey::from_ec_key(EcKey::from_public_key(&group, &point)?)?;
    let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key)?;
    v.update(message)?;
    Ok(v.verify(signature)?)
}

pub(crate) fn assert_err(
    r: keywarden_keys::Result<impl std::fmt::Debug>,
    want: impl Fn(&KeyError) -> bool,
    what: &str,
) -> Result<()> {
    match r {
        Err(e) if want(&e) => Ok(()),
        other => bail!("{what}: got {other:?}"),
    }
}

pub(crate) fn cli_keys(env: &Env) -> Result<Vec<Value>> {
    let out = env.keywarden("laptop", &["--json", "keys"], None)?;
    ensure!(
        out.status.success(),
        "keywarden keys: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    v.as_array()
        .cloned()
        .ok_or_else(|| anyhow!("keys --json is not a list"))
}
