//! Laptops' public keys, kept in memory once read. A device id's key never changes (a
//! re-provisioned laptop gets a new id), so a signed request from a known laptop is checked
//! without reading the database first. Whether the laptop may still act is not kept here: every
//! signed request claims its sequence number in the transaction that does its work, and that
//! claim refuses a retired laptop, on every replica at once ([`crate::auth::SignedCall::claim`]).

use ed25519_dalek::VerifyingKey;

/// Most keys kept; beyond it the least recently used make room (a laptop seen again is read
/// from the database once more). About 200 bytes each.
const CAPACITY: usize = 200_000;

/// The keys of laptops that signed requests recently.
pub struct DeviceKeys {
    keys: quick_cache::sync::Cache<String, VerifyingKey>,
}

impl Default for DeviceKeys {
    fn default() -> Self {
        DeviceKeys {
            keys: quick_cache::sync::Cache::new(CAPACITY),
        }
    }
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("kept", &self.keys.len())
            .finish()
    }
}

impl DeviceKeys {
    /// The key of `device_id`, if kept.
    pub fn get(&self, device_id: &str) -> Option<VerifyingKey> {
        self.keys.get(device_id)
    }

    /// Keep `device_id`'s key (read from the devices table).
    pub fn insert(&self, device_id: &str, key: VerifyingKey) {
        self.keys.insert(device_id.to_owned(), key);
    }
}
