//! The soft key's attestation identity: a root and a leaf certificate (WebAuthn packed
//! attestation), batches of keys sharing one, and the signing helpers.

use super::{
    crypto, AttestationIdentity, Secret, CA_COMMON_NAME, CERT_LIFETIME_DAYS, CERT_NOT_BEFORE,
    COUNTRY, FIDO_GEN_CE_AAGUID_OID, LEAF_COMMON_NAME, ORGANISATION,
};
use crate::ec::p256;
use crate::models::SOFT_KEY_AAGUID;
use crate::Result;
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509Extension, X509Name, X509NameBuilder, X509NameRef};

pub(super) fn new_p256_key() -> Result<PKey<Private>> {
    let group = p256()?;
    let ec = EcKey::generate(&group).map_err(crypto("generating a P-256 key"))?;
    PKey::from_ec_key(ec).map_err(crypto("wrapping a P-256 key"))
}

pub(super) fn name(entries: &[(&str, &str)]) -> std::result::Result<X509Name, ErrorStack> {
    let mut b = X509NameBuilder::new()?;
    for (field, value) in entries {
        b.append_entry_by_text(field, value)?;
    }
    Ok(b.build())
}

pub(super) fn cert_builder(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKey<Private>,
) -> std::result::Result<X509Builder, ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?; // X.509 v3
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer)?;
    b.set_pubkey(key)?;
    let not_before = Asn1Time::from_str(CERT_NOT_BEFORE)?;
    let not_after = Asn1Time::days_from_now(CERT_LIFETIME_DAYS)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    Ok(b)
}

impl AttestationIdentity {
    /// A fresh attestation root and a leaf meeting WebAuthn §8.2.1 (packed attestation
    /// certificate requirements), with the soft key's AAGUID in id-fido-gen-ce-aaguid.
    pub(super) fn generate() -> Result<Self> {
        Self::build().map_err(crypto("creating the attestation certificates"))
    }

    fn build() -> std::result::Result<Self, ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let ca_key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let ca_name = name(&[("C", COUNTRY), ("O", ORGANISATION), ("CN", CA_COMMON_NAME)])?;
        let mut ca = cert_builder(&ca_name, &ca_name, &ca_key)?;
        ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        ca.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&ca.x509v3_context(None, None))?;
        ca.append_extension(ski)?;
        ca.sign(&ca_key, MessageDigest::sha256())?;
        let ca_cert = ca.build();

        let leaf_key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let leaf_name = name(&[
            ("C", COUNTRY),
            ("O", ORGANISATION),
            ("OU", "Authenticator Attestation"),
            ("CN", LEAF_COMMON_NAME),
        ])?;
        let mut leaf = cert_builder(&leaf_name, ca_cert.subject_name(), &leaf_key)?;
        leaf.append_extension(BasicConstraints::new().critical().build()?)?;
        leaf.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&leaf.x509v3_context(Some(&ca_cert), None))?;
        leaf.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&leaf.x509v3_context(Some(&ca_cert), None))?;
        leaf.append_extension(aki)?;
        // extnValue is the DER of an OCTET STRING holding the 16 AAGUID bytes.
        let mut aaguid_der = vec![0x04, 0x10];
        aaguid_der.extend_from_slice(&SOFT_KEY_AAGUID);
        let oid = Asn1Object::from_str(FIDO_GEN_CE_AAGUID_OID)?;
        let value = Asn1OctetString::new_from_bytes(&aaguid_der)?;
        leaf.append_extension(X509Extension::new_from_der(&oid, false, &value)?)?;
        leaf.sign(&ca_key, MessageDigest::sha256())?;
        let leaf_cert = leaf.build();

        Ok(AttestationIdentity {
            ca_cert_pem: pem_string(ca_cert.to_pem()?),
            cert_pem: pem_string(leaf_cert.to_pem()?),
            key_pem: Secret(pem_string(leaf_key.private_key_to_pem_pkcs8()?)),
        })
    }
}

/// An attestation batch: one root, and one attestation certificate and key that several soft
/// keys share, as real keys of one model share a batch attestation certificate. A test or demo
/// service then trusts one root ([`AttestationBatch::root_pem`]) for every key made with
/// [`SoftKey::create_in_batch`], instead of one root per key.
#[derive(Debug, Clone)]
pub struct AttestationBatch {
    pub(super) identity: AttestationIdentity,
}

impl AttestationBatch {
    /// A fresh batch with its own root.
    pub fn generate() -> Result<Self> {
        Ok(AttestationBatch {
            identity: AttestationIdentity::generate()?,
        })
    }

    /// One batch for the whole process, made on first use: the soft keys a test run or a demo
    /// makes with it all chain to one root, so its service trusts one root for all of them.
    pub fn shared() -> Result<&'static AttestationBatch> {
        static SHARED: std::sync::OnceLock<AttestationBatch> = std::sync::OnceLock::new();
        if let Some(batch) = SHARED.get() {
            return Ok(batch);
        }
        let fresh = AttestationBatch::generate()?;
        // Another thread may have made one meanwhile: the first one stored is the one shared.
        Ok(SHARED.get_or_init(|| fresh))
    }

    /// The PEM of the batch's attestation root, for a test or demo service to trust.
    pub fn root_pem(&self) -> &str {
        &self.identity.ca_cert_pem
    }
}

pub(super) fn pem_string(pem: Vec<u8>) -> String {
    // PEM is base64 between ASCII armour lines.
    String::from_utf8_lossy(&pem).into_owned()
}

pub(super) fn sign_es256(
    key: &PKey<Private>,
    auth_data: &[u8],
    client_data_hash: &[u8],
) -> Result<Vec<u8>> {
    let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(crypto("signing"))?;
    signer.update(auth_data).map_err(crypto("signing"))?;
    signer.update(client_data_hash).map_err(crypto("signing"))?;
    signer.sign_to_vec().map_err(crypto("signing"))
}

pub(super) fn load_private_key(pem: &Secret, context: &'static str) -> Result<PKey<Private>> {
    PKey::private_key_from_pem(pem.0.as_bytes()).map_err(crypto(context))
}
