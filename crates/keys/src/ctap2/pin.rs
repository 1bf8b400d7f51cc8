//! PIN/UV auth protocols one and two (CTAP 2.1 §6.5.6-6.5.7), authenticator side.
//!
//! Key agreement is ECDH over P-256 with a key pair made at power-up; the shared secret is
//! SHA-256 of the ECDH x coordinate (protocol one) or an HMAC key and an AES key drawn from it
//! with HKDF-SHA-256 (protocol two). Everything runs on openssl.

pub use crate::ec::hmac_sha256;
use crate::ec::{crypto, p256, public_coordinates};
use crate::{Error, Result};
use ciborium::value::Value;
use openssl::bn::{BigNum, BigNumContext};
use openssl::derive::Deriver;
use openssl::ec::{EcKey, EcPoint};
use openssl::pkey::{PKey, Private};
use openssl::symm::{Cipher, Crypter, Mode};
use sha2::{Digest, Sha256};

/// Which PIN/UV auth protocol a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Protocol one: AES-256-CBC with a zero IV, HMAC truncated to 16 bytes.
    One,
    /// Protocol two: HKDF-derived keys, random IV, full 32-byte HMAC.
    Two,
}

impl Protocol {
    /// The protocol with this number, if it is one or two.
    pub fn from_number(n: i128) -> Option<Protocol> {
        match n {
            1 => Some(Protocol::One),
            2 => Some(Protocol::Two),
            _ => None,
        }
    }

    /// Its number on the wire.
    pub fn number(self) -> u8 {
        match self {
            Protocol::One => 1,
            Protocol::Two => 2,
        }
    }
}

/// HKDF-SHA-256 (RFC 5869) with a 32-byte output.
fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> Result<Vec<u8>> {
    let prk = hmac_sha256(salt, ikm)?;
    let mut t = info.to_vec();
    t.push(1);
    hmac_sha256(&prk, &t)
}

fn aes_cbc(mode: Mode, key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return Err(Error::Malformed {
            reason: format!("{} bytes is not a whole number of AES blocks", data.len()),
        });
    }
    let cipher = Cipher::aes_256_cbc();
    let mut c = Crypter::new(cipher, mode, key, Some(iv)).map_err(crypto("AES-256-CBC"))?;
    c.pad(false);
    let mut out = vec![0u8; data.len() + cipher.block_size()];
    let n = c.update(data, &mut out).map_err(crypto("AES-256-CBC"))?;
    let m = c.finalize(&mut out[n..]).map_err(crypto("AES-256-CBC"))?;
    out.truncate(n + m);
    Ok(out)
}

/// The shared secret of one key agreement, for one protocol.
pub struct SharedSecret {
    protocol: Protocol,
    hmac_key: Vec<u8>,
    aes_key: Vec<u8>,
}

impl SharedSecret {
    /// authenticate(key, message) as the protocol defines it.
    pub fn authenticate(&self, message: &[u8]) -> Result<Vec<u8>> {
        authenticate(self.protocol, &self.hmac_key, message)
    }

    /// Check a pinUvAuthParam made with this secret, in constant time.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<bool> {
        let expected = self.authenticate(message)?;
        Ok(expected.len() == signature.len() && openssl::memcmp::eq(&expected, signature))
    }

    /// encrypt(key, plaintext).
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        match self.protocol {
            Protocol::One => aes_cbc(Mode::Encrypt, &self.aes_key, &[0u8; 16], plaintext),
            Protocol::Two => {
                let mut iv = [0u8; 16];
                openssl::rand::rand_bytes(&mut iv).map_err(crypto("making an IV"))?;
                let mut out = iv.to_vec();
                out.extend(aes_cbc(Mode::Encrypt, &self.aes_key, &iv, plaintext)?);
                Ok(out)
            }
        }
    }

    /// decrypt(key, ciphertext).
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        match self.protocol {
            Protocol::One => aes_cbc(Mode::Decrypt, &self.aes_key, &[0u8; 16], ciphertext),
            Protocol::Two => {
                if ciphertext.len() < 32 {
                    return Err(Error::Malformed {
                        reason: "protocol 2 ciphertext shorter than IV and one block".into(),
                    });
                }
                let (iv, ct) = ciphertext.split_at(16);
                aes_cbc(Mode::Decrypt, &self.aes_key, iv, ct)
            }
        }
    }
}

/// authenticate(key, message): LEFT(HMAC, 16) for protocol one, the full HMAC for two.
pub fn authenticate(protocol: Protocol, key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    let mut mac = hmac_sha256(key, message)?;
    if protocol == Protocol::One {
        mac.truncate(16);
    }
    Ok(mac)
}

/// The authenticator's key agreement key pair, made anew at power-up and after a wrong PIN.
pub struct KeyAgreement {
    key: PKey<Private>,
}

fn coordinate(v: &Value, label: i128) -> Option<Vec<u8>> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_integer().map(i128::from) == Some(label))
        .and_then(|(_, v)| v.as_bytes().cloned())
}

impl KeyAgreement {
    /// A fresh key pair.
    pub fn generate() -> Result<Self> {
        let group = p256()?;
        let ec = EcKey::generate(&group).map_err(crypto("making a key agreement key"))?;
        Ok(KeyAgreement {
            key: PKey::from_ec_key(ec).map_err(crypto("making a key agreement key"))?,
        })
    }

    /// The public key as a COSE_Key with alg ECDH-ES+HKDF-256 (-25), as getKeyAgreement returns.
    pub fn public_cose(&self) -> Result<Value> {
        let (x, y) = public_coordinates(&self.key, "reading key agreement key")?;
        Ok(Value::Map(vec![
            (Value::from(1), Value::from(2)),
            (Value::from(3), Value::from(-25)),
            (Value::from(-1), Value::from(1)),
            (Value::from(-2), Value::Bytes(x.to_vec())),
            (Value::from(-3), Value::Bytes(y.to_vec())),
        ]))
    }

    /// ECDH with the platform's COSE public key, then the protocol's KDF.
    pub fn shared_secret(&self, protocol: Protocol, platform_key: &Value) -> Result<SharedSecret> {
        let bad = || Error::Malformed {
            reason: "keyAgreement is not a P-256 COSE key".into(),
        };
        let x = coordinate(platform_key, -2).ok_or_else(bad)?;
        let y = coordinate(platform_key, -3).ok_or_else(bad)?;
        if x.len() != 32 || y.len() != 32 {
            return Err(bad());
        }
        let group = p256()?;
        let mut ctx = BigNumContext::new().map_err(crypto("ECDH"))?;
        let mut point = EcPoint::new(&group).map_err(crypto("ECDH"))?;
        let bx = BigNum::from_slice(&x).map_err(crypto("ECDH"))?;
        let by = BigNum::from_slice(&y).map_err(crypto("ECDH"))?;
        point
            .set_affine_coordinates_gfp(&group, &bx, &by, &mut ctx)
            .map_err(|_| bad())?;
        let peer_ec = EcKey::from_public_key(&group, &point).map_err(|_| bad())?;
        peer_ec.check_key().map_err(|_| bad())?;
        let peer = PKey::from_ec_key(peer_ec).map_err(crypto("ECDH"))?;
        let mut deriver = Deriver::new(&self.key).map_err(crypto("ECDH"))?;
        deriver.set_peer(&peer).map_err(crypto("ECDH"))?;
        let z = deriver.derive_to_vec().map_err(crypto("ECDH"))?;
        Ok(match protocol {
            Protocol::One => {
                let k = Sha256::digest(&z).to_vec();
                SharedSecret {
                    protocol,
                    hmac_key: k.clone(),
                    aes_key: k,
                }
            }
            Protocol::Two => {
                let salt = [0u8; 32];
                SharedSecret {
                    protocol,
                    hmac_key: hkdf32(&salt, &z, b"CTAP2 HMAC key")?,
                    aes_key: hkdf32(&salt, &z, b"CTAP2 AES key")?,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn both_sides_derive_the_same_secret_in_both_protocols() {
        let authenticator = KeyAgreement::generate().unwrap();
        let platform = KeyAgreement::generate().unwrap();
        for protocol in [Protocol::One, Protocol::Two] {
            let a = authenticator
                .shared_secret(protocol, &platform.public_cose().unwrap())
                .unwrap();
            let p = platform
                .shared_secret(protocol, &authenticator.public_cose().unwrap())
                .unwrap();
            let ct = p.encrypt(&[7u8; 64]).unwrap();
            assert_eq!(a.decrypt(&ct).unwrap(), vec![7u8; 64]);
            let mac = p.authenticate(&ct).unwrap();
            assert_eq!(mac.len(), if protocol == Protocol::One { 16 } else { 32 });
            assert!(a.verify(&ct, &mac).unwrap());
            assert!(!a.verify(&ct, &mac[1..]).unwrap());
        }
    }

    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let okm = hkdf32(&salt, &ikm, &info).unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn a_point_off_the_curve_is_refused() {
        let a = KeyAgreement::generate().unwrap();
        let bogus = Value::Map(vec![
            (Value::from(-2), Value::Bytes(vec![1; 32])),
            (Value::from(-3), Value::Bytes(vec![2; 32])),
        ]);
        assert!(a.shared_secret(Protocol::Two, &bogus).is_err());
    }
}
