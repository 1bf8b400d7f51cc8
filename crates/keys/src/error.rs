//! The one error type of this crate, and the single place CTAP status codes are mapped.

use std::path::PathBuf;

/// Everything that can go wrong talking to an authenticator.
///
/// Variants a caller acts on (wrong PIN, PIN blocked, already enrolled, key removed, ...) are
/// distinct; every other CTAP status ends up in [`Error::Ctap`] with its name. Messages never
/// contain a PIN or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No provider knows a key with this id (it was never present, or it has been unplugged).
    #[error("no key with id {id} is present")]
    NotFound {
        /// The id asked for.
        id: String,
    },

    /// The operation needs the key's PIN and none was given (CTAP `PUAT_REQUIRED`, 0x36).
    #[error("this key needs its PIN for that operation")]
    PinRequired,

    /// The PIN given is wrong (CTAP `PIN_INVALID`, 0x31); `retries_left` attempts remain before
    /// the PIN is blocked for good.
    #[error("wrong PIN, {retries_left} attempts left before the key is blocked")]
    PinInvalid {
        /// PIN attempts left on the key.
        retries_left: u32,
    },

    /// Every PIN attempt is used up (CTAP `PIN_BLOCKED`, 0x32); only a reset, which deletes every
    /// credential on the key, makes it usable again.
    #[error("PIN blocked after too many wrong attempts; the key must be reset")]
    PinBlocked,

    /// Three wrong PINs in a row since the key was plugged in (CTAP `PIN_AUTH_BLOCKED`, 0x34);
    /// unplugging and replugging the key allows further attempts.
    #[error("three wrong PINs in a row; unplug the key and plug it in again")]
    PinAuthBlocked,

    /// The new PIN breaks the PIN policy (CTAP `PIN_POLICY_VIOLATION`, 0x37): it must be valid
    /// UTF-8 with at least `min_len` characters and at most 63 bytes.
    #[error("a PIN needs at least {min_len} characters and at most 63 bytes")]
    PinPolicy {
        /// The minimum number of characters (Unicode code points) this key accepts.
        min_len: u32,
    },

    /// The key demands a new PIN before its PIN is used again (getInfo `forcePINChange`, set by
    /// an administrator's setMinPINLength or by a minimum raised above the PIN's length): the
    /// PIN must be changed, to one of at least `min_len` characters, first.
    #[error("this key requires a new PIN before it can be used: change it to one of at least {min_len} characters")]
    PinChangeRequired {
        /// The minimum number of characters the new PIN needs.
        min_len: u32,
    },

    /// The key has no PIN yet, so it cannot verify the user (CTAP `PIN_NOT_SET`, 0x35).
    #[error("this key has no PIN yet; set one first")]
    PinNotSet,

    /// A first PIN was to be set on a key that already has one.
    #[error("this key already has a PIN; change it instead")]
    PinAlreadySet,

    /// The key already holds one of the excluded credentials (CTAP `CREDENTIAL_EXCLUDED`, 0x19).
    #[error("this key is already enrolled")]
    CredentialExcluded,

    /// The key holds no credential that matches (CTAP `NO_CREDENTIALS`, 0x2E).
    #[error("no matching credential on this key")]
    NoCredentials,

    /// Nobody touched the key in time (CTAP `USER_ACTION_TIMEOUT`, 0x2F, or `ACTION_TIMEOUT`, 0x3A).
    #[error("timed out waiting for a touch on the key")]
    UserActionTimeout,

    /// The key refused the operation (CTAP `OPERATION_DENIED`, 0x27), e.g. the touch was declined.
    #[error("the key refused the operation")]
    OperationDenied,

    /// The key has no free slot for another discoverable credential (CTAP `KEY_STORE_FULL`, 0x28).
    #[error("no room left on the key for another discoverable credential")]
    KeyStoreFull,

    /// The key went away in the middle of an operation (unplugged, or its state file removed).
    #[error("the key was removed")]
    KeyRemoved,

    /// The key, or this backend, does not offer what was asked for.
    #[error("{what} is not supported by this key")]
    Unsupported {
        /// What is missing, e.g. `credential management`.
        what: String,
    },

    /// Any other CTAP status the key answered with.
    #[error("the key answered {name} (0x{code:02x})")]
    Ctap {
        /// The CTAP status byte.
        code: u8,
        /// Its name in the CTAP specification, e.g. `INVALID_PARAMETER`.
        name: &'static str,
    },

    /// The HID stack failed, or panicked and the panic was caught at this crate's boundary.
    #[error("security key backend failed: {message}")]
    Backend {
        /// What the HID stack reported (never contains a PIN).
        message: String,
    },

    /// The soft key's state file could not be read or written.
    #[error("cannot access soft key state {}: {source}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The soft key's state file exists but does not hold a valid soft key.
    #[error("soft key state {} is corrupt: {reason}", path.display())]
    StateCorrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it (never its secret contents).
        reason: String,
    },

    /// A cryptographic primitive failed (key generation, signing, certificate building).
    #[error("crypto failure while {context}: {reason}")]
    Crypto {
        /// What was being done, e.g. `signing the attestation`.
        context: &'static str,
        /// What the crypto library reported.
        reason: String,
    },

    /// The key returned data this crate cannot use (e.g. truncated authenticator data).
    #[error("malformed answer from the key: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The [`Error`] for a CTAP status byte other than success.
    ///
    /// `PIN_INVALID` (0x31) carries the number of retries left, which the status byte alone does
    /// not tell: `retries_left` is asked for it (only for that status). When it cannot say, the
    /// status is reported as a plain [`Error::Ctap`].
    pub fn from_ctap_status(code: u8, retries_left: impl FnOnce() -> Option<u32>) -> Error {
        match code {
            0x19 => Error::CredentialExcluded,
            0x27 => Error::OperationDenied,
            0x28 => Error::KeyStoreFull,
            0x2E => Error::NoCredentials,
            0x2F | 0x3A => Error::UserActionTimeout,
            0x31 => match retries_left() {
                Some(0) => Error::PinBlocked,
                Some(retries_left) => Error::PinInvalid { retries_left },
                None => Error::Ctap {
                    code,
                    name: ctap_status_name(code),
                },
            },
            0x32 => Error::PinBlocked,
            0x34 => Error::PinAuthBlocked,
            0x35 => Error::PinNotSet,
            0x36 => Error::PinRequired,
            // The minimum length is not part of the status; 4 is the CTAP floor.
            0x37 => Error::PinPolicy { min_len: 4 },
            _ => Error::Ctap {
                code,
                name: ctap_status_name(code),
            },
        }
    }
}

/// The CTAP 2.1 name of a status byte (without its `CTAP1_ERR_` / `CTAP2_ERR_` prefix).
pub fn ctap_status_name(code: u8) -> &'static str {
    match code {
        0x00 => "SUCCESS",
        0x01 => "INVALID_COMMAND",
        0x02 => "INVALID_PARAMETER",
        0x03 => "INVALID_LENGTH",
        0x04 => "INVALID_SEQ",
        0x05 => "TIMEOUT",
        0x06 => "CHANNEL_BUSY",
        0x0A => "LOCK_REQUIRED",
        0x0B => "INVALID_CHANNEL",
        0x11 => "CBOR_UNEXPECTED_TYPE",
        0x12 => "INVALID_CBOR",
        0x14 => "MISSING_PARAMETER",
        0x15 => "LIMIT_EXCEEDED",
        0x17 => "FP_DATABASE_FULL",
        0x18 => "LARGE_BLOB_STORAGE_FULL",
        0x19 => "CREDENTIAL_EXCLUDED",
        0x21 => "PROCESSING",
        0x22 => "INVALID_CREDENTIAL",
        0x23 => "USER_ACTION_PENDING",
        0x24 => "OPERATION_PENDING",
        0x25 => "NO_OPERATIONS",
        0x26 => "UNSUPPORTED_ALGORITHM",
        0x27 => "OPERATION_DENIED",
        0x28 => "KEY_STORE_FULL",
        0x2B => "UNSUPPORTED_OPTION",
        0x2C => "INVALID_OPTION",
        0x2D => "KEEPALIVE_CANCEL",
        0x2E => "NO_CREDENTIALS",
        0x2F => "USER_ACTION_TIMEOUT",
        0x30 => "NOT_ALLOWED",
        0x31 => "PIN_INVALID",
        0x32 => "PIN_BLOCKED",
        0x33 => "PIN_AUTH_INVALID",
        0x34 => "PIN_AUTH_BLOCKED",
        0x35 => "PIN_NOT_SET",
        0x36 => "PUAT_REQUIRED",
        0x37 => "PIN_POLICY_VIOLATION",
        0x39 => "REQUEST_TOO_LARGE",
        0x3A => "ACTION_TIMEOUT",
        0x3B => "UP_REQUIRED",
        0x3C => "UV_BLOCKED",
        0x3D => "INTEGRITY_FAILURE",
        0x3E => "INVALID_SUBCOMMAND",
        0x3F => "UV_INVALID",
        0x40 => "UNAUTHORIZED_PERMISSION",
        0x7F => "OTHER",
        0xE0..=0xEF => "EXTENSION_SPECIFIC",
        0xF0..=0xFF => "VENDOR_SPECIFIC",
        _ => "UNKNOWN_STATUS",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `from_ctap_status` maps each `(status, retries left)` to the variant given.
    fn assert_maps(cases: &[(u8, Option<u32>, Error)]) {
        for (code, retries_left, expected) in cases {
            assert_eq!(
                format!("{:?}", Error::from_ctap_status(*code, || *retries_left)),
                format!("{expected:?}"),
                "status {code:#04x} with {retries_left:?} retries left"
            );
        }
    }

    #[test]
    fn pin_statuses_map_to_their_own_variants() {
        assert_maps(&[
            (0x31, Some(5), Error::PinInvalid { retries_left: 5 }),
            (0x31, Some(0), Error::PinBlocked),
            (
                0x31,
                None,
                Error::Ctap {
                    code: 0x31,
                    name: "PIN_INVALID",
                },
            ),
            (0x32, None, Error::PinBlocked),
            (0x34, None, Error::PinAuthBlocked),
            (0x35, None, Error::PinNotSet),
            (0x36, None, Error::PinRequired),
            (0x37, None, Error::PinPolicy { min_len: 4 }),
        ]);
    }

    #[test]
    fn ceremony_statuses_map_to_their_own_variants() {
        assert_maps(&[
            (0x19, None, Error::CredentialExcluded),
            (0x2E, None, Error::NoCredentials),
            (0x2F, None, Error::UserActionTimeout),
            (0x27, None, Error::OperationDenied),
            (0x28, None, Error::KeyStoreFull),
        ]);
    }

    #[test]
    fn other_statuses_keep_code_and_name() {
        let e = Error::from_ctap_status(0x33, || Some(3));
        assert!(matches!(
            e,
            Error::Ctap {
                code: 0x33,
                name: "PIN_AUTH_INVALID"
            }
        ));
        assert_eq!(e.to_string(), "the key answered PIN_AUTH_INVALID (0x33)");
    }

    #[test]
    fn excluded_message_says_already_enrolled() {
        assert_eq!(
            Error::CredentialExcluded.to_string(),
            "this key is already enrolled"
        );
    }
}
