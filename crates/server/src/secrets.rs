//! One-time secrets (admin tokens, provisioning tokens, enrolment tickets): random, shown once,
//! stored only as a SHA-256 hash. They carry 256 bits of entropy, so an unsalted fast hash is
//! the right tool: there is nothing to brute-force.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of admin API tokens.
pub const ADMIN_PREFIX: &str = "kwa_";
/// Prefix of device provisioning tokens.
pub const PROVISIONING_PREFIX: &str = "kwp_";
/// Prefix of enrolment tickets.
pub const TICKET_PREFIX: &str = "kwt_";

/// A new secret with the given prefix.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decode base64url (padding tolerated).
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// Unix ms as RFC 3339 UTC with minute precision, for messages such as
/// `ticket expired at 2026-11-24T10:00Z`.
pub fn fmt_time(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_like_the_style_guide() {
        assert_eq!(fmt_time(0), "1970-01-01T00:00Z");
        assert_eq!(fmt_time(1_795_989_600_000), "2026-11-29T22:00Z");
    }

    #[test]
    fn secrets_are_distinct_and_hash_stably() {
        let a = generate(TICKET_PREFIX);
        let b = generate(TICKET_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("kwt_"));
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
    }
}
