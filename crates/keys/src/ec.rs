//! openssl helpers: P-256 (the soft key and its CTAP2 front end) and HMAC-SHA-256 (also the
//! HID backend's authenticatorConfig).

use crate::{Error, Result};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::EcGroup;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;

/// An openssl failure as [`Error::Crypto`], saying what was being done.
pub(crate) fn crypto(context: &'static str) -> impl FnOnce(ErrorStack) -> Error {
    move |e| Error::Crypto {
        context,
        reason: e.to_string(),
    }
}

/// The P-256 curve.
pub(crate) fn p256() -> Result<EcGroup> {
    EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(crypto("selecting the P-256 curve"))
}

/// The affine coordinates of the public point of the P-256 key `key`, 32 bytes each; `context`
/// names what was being done if openssl fails.
pub(crate) fn public_coordinates(
    key: &PKey<Private>,
    context: &'static str,
) -> Result<([u8; 32], [u8; 32])> {
    let group = p256()?;
    let ec = key.ec_key().map_err(crypto(context))?;
    let mut ctx = BigNumContext::new().map_err(crypto(context))?;
    let mut x = BigNum::new().map_err(crypto(context))?;
    let mut y = BigNum::new().map_err(crypto(context))?;
    ec.public_key()
        .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
        .map_err(crypto(context))?;
    let coord = |n: &BigNum| -> Result<[u8; 32]> {
        let v = n.to_vec_padded(32).map_err(crypto(context))?;
        v.try_into().map_err(|_| Error::Crypto {
            context,
            reason: "P-256 coordinate longer than 32 bytes".to_owned(),
        })
    };
    Ok((coord(&x)?, coord(&y)?))
}

/// HMAC-SHA-256.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    let pkey = PKey::hmac(key).map_err(crypto("making an HMAC key"))?;
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey).map_err(crypto("HMAC"))?;
    signer.update(message).map_err(crypto("HMAC"))?;
    signer.sign_to_vec().map_err(crypto("HMAC"))
}
