//! authenticatorConfig on the soft key: the settings themselves, after the caller checked the
//! PIN (in-process) or the pinUvAuthToken (over CTAP).

use super::{SoftKey, MAX_PIN_BYTES};
use crate::config::{ConfigCommand, SetMinPinLength};
use crate::{Error, Result};

/// Most relying party ids the soft key keeps for `minPinLength` (getInfo
/// maxRPIDsForSetMinPINLength).
pub const MAX_MIN_PIN_LENGTH_RP_IDS: usize = 8;

impl SoftKey {
    /// Apply one authenticatorConfig command (CTAP 2.1 §6.11).
    pub(crate) fn apply_config(&mut self, command: &ConfigCommand) -> Result<()> {
        self.refresh()?;
        match command {
            ConfigCommand::EnableEnterpriseAttestation => {
                self.state.enterprise_attestation = true;
            }
            ConfigCommand::ToggleAlwaysUv => self.state.always_uv = !self.state.always_uv,
            ConfigCommand::SetMinPinLength(p) => self.set_min_pin_length(p)?,
        }
        self.save()
    }

    fn set_min_pin_length(&mut self, p: &SetMinPinLength) -> Result<()> {
        let current = self.state.min_pin_length.max(4);
        let new = p.new_min_pin_length.unwrap_or(current);
        // A minimum only goes up (a reset brings it back), and no PIN could meet one above 63.
        if new < current || new as usize > MAX_PIN_BYTES {
            return Err(Error::PinPolicy { min_len: current });
        }
        if p.min_pin_length_rp_ids.len() > MAX_MIN_PIN_LENGTH_RP_IDS {
            return Err(Error::from_ctap_status(0x03, || None));
        }
        if p.force_change_pin && self.state.pin_hash.is_none() {
            return Err(Error::PinNotSet);
        }
        self.state.min_pin_length = new;
        if !p.min_pin_length_rp_ids.is_empty() {
            self.state.min_pin_length_rp_ids = Some(p.min_pin_length_rp_ids.clone());
        }
        // The PIN no longer meets the minimum (or its length is not known): it must change.
        let short = self.state.pin_hash.is_some()
            && new > current
            && self.state.pin_code_points.is_none_or(|n| n < new);
        if p.force_change_pin || short {
            self.state.force_pin_change = true;
        }
        Ok(())
    }

    /// Whether `rp_id` gets the `minPinLength` extension output: every relying party until a
    /// list is configured, then only those listed.
    pub(crate) fn min_pin_length_readable_by(&self, rp_id: &str) -> bool {
        self.state
            .min_pin_length_rp_ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|id| id == rp_id))
    }

    /// alwaysUv is on.
    pub(crate) fn always_uv(&self) -> bool {
        self.state.always_uv
    }
}
