//! The `packed` attestation signature of a new credential, checked before it leaves this backend
//! (see the module documentation of [`super`]).

use crate::attestation;
use crate::{Error, Result};

fn attestation_error(reason: impl Into<String>) -> Error {
    Error::Malformed {
        reason: format!("attestation: {}", reason.into()),
    }
}

fn cbor_field<'a>(
    map: &'a [(ciborium::Value, ciborium::Value)],
    name: &str,
) -> Option<&'a ciborium::Value> {
    map.iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

/// The credential public key (COSE EC2 P-256) inside authenticatorData, as an openssl key.
fn credential_key(auth_data: &[u8]) -> Result<openssl::pkey::PKey<openssl::pkey::Public>> {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    let (x, y) = attestation::attested_es256_coordinates(auth_data).map_err(attestation_error)?;
    let bad = |e: openssl::error::ErrorStack| attestation_error(format!("credential key: {e}"));
    let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).map_err(bad)?;
    let mut ctx = BigNumContext::new().map_err(bad)?;
    let mut point = EcPoint::new(&group).map_err(bad)?;
    let (bx, by) = (
        BigNum::from_slice(&x).map_err(bad)?,
        BigNum::from_slice(&y).map_err(bad)?,
    );
    point
        .set_affine_coordinates_gfp(&group, &bx, &by, &mut ctx)
        .map_err(bad)?;
    let ec = EcKey::from_public_key(&group, &point).map_err(bad)?;
    openssl::pkey::PKey::from_ec_key(ec).map_err(bad)
}

/// Check the signature of a `packed` attestation (x5c leaf, or self attestation with the
/// credential key) over authData ‖ clientDataHash. `none` has nothing to check; the service
/// decides whether it accepts that.
pub(super) fn check_attestation(attestation_object: &[u8], client_data_hash: &[u8]) -> Result<()> {
    let value: ciborium::Value = ciborium::from_reader(attestation_object)
        .map_err(|_| attestation_error("attestationObject is not CBOR"))?;
    let map = value
        .as_map()
        .ok_or_else(|| attestation_error("attestationObject is not a map"))?;
    let fmt = cbor_field(map, "fmt")
        .and_then(|v| v.as_text())
        .unwrap_or("");
    if fmt != "packed" {
        return Ok(());
    }
    let auth_data = cbor_field(map, "authData")
        .and_then(|v| v.as_bytes())
        .ok_or_else(|| attestation_error("no authData"))?;
    let stmt = cbor_field(map, "attStmt")
        .and_then(|v| v.as_map())
        .ok_or_else(|| attestation_error("no attStmt"))?;
    let alg = cbor_field(stmt, "alg")
        .and_then(|v| v.as_integer())
        .map(i128::from);
    if alg != Some(i128::from(attestation::COSE_ALG_ES256)) {
        return Err(attestation_error(format!("unsupported alg {alg:?}")));
    }
    let sig = cbor_field(stmt, "sig")
        .and_then(|v| v.as_bytes())
        .ok_or_else(|| attestation_error("no sig"))?;
    let key = match cbor_field(stmt, "x5c").and_then(|v| v.as_array()) {
        Some(chain) => {
            let leaf = chain
                .first()
                .and_then(|c| c.as_bytes())
                .ok_or_else(|| attestation_error("empty x5c"))?;
            openssl::x509::X509::from_der(leaf)
                .and_then(|c| c.public_key())
                .map_err(|e| attestation_error(format!("x5c leaf: {e}")))?
        }
        None => credential_key(auth_data)?,
    };
    let bad = |e: openssl::error::ErrorStack| attestation_error(format!("verifying: {e}"));
    let mut v =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key).map_err(bad)?;
    v.update(auth_data).map_err(bad)?;
    v.update(client_data_hash).map_err(bad)?;
    if !v.verify(sig).unwrap_or(false) {
        return Err(attestation_error("the signature does not verify"));
    }
    Ok(())
}
