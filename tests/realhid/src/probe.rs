//! The silent probe over hidraw: getAssertion with `up: false`, sent by the `hid` backend itself
//! (ctap-hid-fido2 always asks for presence), in allow lists of the key's getInfo
//! maxCredentialCountInList; it answers without a touch or a PIN, flags clear, and a key that
//! holds none of the candidates answers `None`.

use std::time::Instant;

use crate::env::{plug, Env};
use crate::hid_helpers::{credential_public_key, make_other_credential, verify_es256};
use crate::{OTHER_RP, PIN};
use anyhow::{ensure, Result};
use keywarden_keys::ProbeRequest;
use sha2::{Digest, Sha256};

pub(crate) fn check(env: &mut Env) -> Result<()> {
    let t = Instant::now();
    let p = plug(env, "key-p", &["--profile", "fido21"], Some(PIN))?;
    let mut kp = p.open()?;
    let (id, attestation_object) = make_other_credential(kp.as_mut(), b"p1", PIN)?;
    let retries = kp.pin_retries()?;
    // 20 strangers first: the soft key takes 8 ids a list, so the credential is in the third.
    let mut candidates: Vec<Vec<u8>> = (0..20u8).map(|i| vec![0xA0 ^ i; 32]).collect();
    candidates.push(id.clone());
    let client_data_json =
        br#"{"type":"keywarden.probe","challenge":"AAAA","origin":"https://other.example"}"#
            .to_vec();
    let req = ProbeRequest {
        rp_id: OTHER_RP.into(),
        client_data_json: client_data_json.clone(),
        credential_ids: candidates,
    };
    let a = kp.probe(&req)?;
    ensure!(
        a.as_ref().map(|a| &a.credential_id) == Some(&id),
        "probe found the credential: {a:?}"
    );
    let a = a.expect("checked just above");
    ensure!(
        a.authenticator_data[32] & 0x05 == 0,
        "UP and UV clear: {:#x}",
        a.authenticator_data[32]
    );
    let (x, y) = credential_public_key(&attestation_object)?;
    let mut signed = a.authenticator_data.clone();
    signed.extend_from_slice(&Sha256::digest(&client_data_json));
    ensure!(
        verify_es256(&x, &y, &signed, &a.signature)?,
        "the probe's signature verifies"
    );
    ensure!(kp.pin_retries()? == retries, "no PIN was used");
    let strangers = ProbeRequest {
        credential_ids: vec![vec![7; 32], vec![8; 32]],
        ..req
    };
    ensure!(
        kp.probe(&strangers)?.is_none(),
        "no candidate on the key: None"
    );
    drop(kp);
    drop(p);
    env.ok(
        "silent probe over hidraw: up=false in lists of maxCredentialCountInList, no touch or PIN, flags clear, signature verified",
        t,
    );
    Ok(())
}
