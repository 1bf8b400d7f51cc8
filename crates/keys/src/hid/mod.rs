//! Real security keys over USB HID, through `ctap-hid-fido2`.
//!
//! Every call into `ctap-hid-fido2` (and so into hidapi) runs inside
//! [`std::panic::catch_unwind`]: the library panics in places (for one, opening a device panics
//! when hidapi cannot start), and a panic must not take the agent down. A caught panic, like any
//! other failure of the HID stack, becomes [`Error::Backend`]; CTAP status codes the key answers
//! with become their own [`Error`] variants.
//!
//! Per key, the PIN/UV auth protocol (2 when the key offers it, else 1) and the credential
//! management command (the CTAP 2.1 one, or the 2.1-preview one on keys that only have that) are
//! chosen from getInfo, because the library's defaults (protocol 1, preview command) fail on keys
//! that implement only the current ones.
//!
//! Before a new credential leaves this backend its `packed` attestation signature is checked
//! here, with openssl, against the x5c leaf or (self attestation) the credential's own key, so a
//! key that answers garbage gets a clear error at the laptop. `ctap-hid-fido2`'s own verifier is
//! never used: it panics on self attestation. Whether the chain is trusted is the service's
//! policy (webauthn-rs there verifies everything again). The calls block; async callers run them
//! on a blocking thread.
//!
//! authenticatorConfig ([`crate::config`]) takes its `acfg` token from the library and sends
//! the one request over hidraw itself ([`crate::hidraw_cbor`]), as authenticatorReset does. A
//! key whose getInfo says `forcePINChange` gets [`Error::PinChangeRequired`] for every use of
//! its PIN but a change, before anything is sent.
//!
//! # Key ids
//!
//! `hid:` followed by the USB serial number when the device exposes one. Many FIDO keys do not
//! (to avoid being trackable), and then the id is `hid:` followed by the first 16 bytes, in hex,
//! of SHA-256 over the vendor id, product id, product string, AAGUID and the OS device path. That
//! is stable while the key stays plugged into the same port, and changes when it moves to another
//! port; nothing more stable can be read from such a key without its PIN.

use crate::attestation::{self, AttestationStatement};
use crate::config::ConfigCommand;
use crate::models;
use crate::{
    Assertion, Authenticator, Error, GetAssertionRequest, KeyProvider, MadeCredential,
    MakeCredentialRequest, Prompt, Result, StoredCredential,
};
use ctap_hid_fido2::fidokey::pin::Permission;
use ctap_hid_fido2::fidokey::{
    CredentialExtension, GetAssertionArgsBuilder, MakeCredentialArgsBuilder,
};
use ctap_hid_fido2::public_key_credential_descriptor::PublicKeyCredentialDescriptor;
use ctap_hid_fido2::public_key_credential_user_entity::PublicKeyCredentialUserEntity;
use ctap_hid_fido2::{FidoKeyHid, HidInfo, HidParam, LibCfg};
use keywarden_protocol::{KeyBackend, KeyInfo, SOFT_KEY_LABEL};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

#[cfg(test)]
mod tests;
mod verify;

use verify::check_attestation;

/// Longest PIN in bytes (CTAP 2.1).
const MAX_PIN_BYTES: usize = 63;
/// How long an authenticatorConfig may take (it asks for no touch).
const CONFIG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Run one call into the HID stack, turning its panics and errors into [`Error`].
fn guard<T, E: fmt::Display>(
    what: &'static str,
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map_library_error(what, &format!("{e:#}"))),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(Error::Backend {
                message: format!("{what}: the HID stack panicked: {detail}"),
            })
        }
    }
}

/// `ctap-hid-fido2` reports a CTAP status as text, `response_status err = 0x31 CTAP2_ERR_...`,
/// and a vanished device as a failed read or write.
fn map_library_error(what: &'static str, message: &str) -> Error {
    if let Some(code) = ctap_status_in(message) {
        return Error::from_ctap_status(code, || None);
    }
    if message.contains("read err") || message.contains("write error") {
        return Error::KeyRemoved;
    }
    Error::Backend {
        message: format!("{what}: {message}"),
    }
}

fn ctap_status_in(message: &str) -> Option<u8> {
    let rest = message.split("response_status err = 0x").nth(1)?;
    let digits: String = rest
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .take(2)
        .collect();
    u8::from_str_radix(&digits, 16).ok()
}

fn lib_cfg() -> LibCfg {
    let mut cfg = LibCfg::init();
    cfg.enable_log = false;
    // Touch prompts go through [`Prompt`], not the library's own stdout messages.
    cfg.enable_keep_alive_msg = false;
    cfg
}

/// What this crate keeps from getInfo.
#[derive(Debug, Clone)]
struct DeviceInfo {
    versions: Vec<String>,
    extensions: Vec<String>,
    aaguid: Vec<u8>,
    options: BTreeMap<String, bool>,
    pin_protocols: Vec<u32>,
    firmware_version: u32,
    min_pin_length: u32,
    force_pin_change: bool,
    remaining_discoverable_credentials: u32,
    /// getInfo maxCredentialCountInList and maxCredentialIdLength (0: not reported).
    list_limits: crate::probe::ListLimits,
}

/// Which credential management command a key speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CredMgmt {
    /// authenticatorCredentialManagement (0x0A), CTAP 2.1.
    Standard,
    /// The 2.1-preview command (0x41).
    Preview,
    /// None.
    Absent,
}

impl DeviceInfo {
    fn read(device: &FidoKeyHid) -> Result<Self> {
        guard("reading getInfo", || {
            device.get_info().map(|i| DeviceInfo {
                versions: i.versions,
                extensions: i.extensions,
                aaguid: i.aaguid,
                options: i.options.into_iter().collect(),
                pin_protocols: i.pin_uv_auth_protocols,
                firmware_version: i.firmware_version,
                min_pin_length: i.min_pin_length,
                force_pin_change: i.force_pin_change,
                remaining_discoverable_credentials: i.remaining_discoverable_credentials,
                list_limits: crate::probe::ListLimits {
                    max_count: i.max_credential_count_in_list,
                    max_id_length: i.max_credential_id_length,
                },
            })
        })
    }

    fn option(&self, name: &str) -> bool {
        self.options.get(name).copied().unwrap_or(false)
    }

    fn is_fido_2_1(&self) -> bool {
        self.versions.iter().any(|v| v == "FIDO_2_1")
    }

    fn pin_set(&self) -> bool {
        self.option("clientPin")
    }

    fn pin_protocol(&self) -> u8 {
        if self.pin_protocols.contains(&2) {
            2
        } else {
            1
        }
    }

    fn cred_mgmt(&self) -> CredMgmt {
        if self.is_fido_2_1() || self.option("credMgmt") {
            CredMgmt::Standard
        } else if self.option("credentialMgmtPreview") {
            CredMgmt::Preview
        } else {
            CredMgmt::Absent
        }
    }

    fn min_pin_len(&self) -> u32 {
        self.min_pin_length.max(4)
    }
}

fn serial_number(hid: &HidInfo) -> Option<&str> {
    // `HidInfo::info` is "product=... usage_page=... usage=... serial_number=S path=...".
    let rest = hid.info.split(" serial_number=").nth(1)?;
    let serial = rest.split(" path=").next()?.trim();
    (!serial.is_empty()).then_some(serial)
}

fn key_id(hid: &HidInfo, aaguid: &[u8]) -> String {
    if let Some(serial) = serial_number(hid) {
        return format!("hid:{serial}");
    }
    let path = match &hid.param {
        HidParam::Path(p) => p.as_str(),
        HidParam::VidPid { .. } => "",
    };
    let mut h = Sha256::new();
    h.update(hid.vid.to_be_bytes());
    h.update(hid.pid.to_be_bytes());
    for part in [hid.product_string.as_bytes(), aaguid, path.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    format!("hid:{}", hex::encode(&h.finalize()[..16]))
}

fn key_info(hid: &HidInfo, d: &DeviceInfo, pin_retries: Option<u32>) -> KeyInfo {
    let aaguid = models::format_aaguid(&d.aaguid);
    let model = models::model_for_aaguid(&aaguid);
    // The soft key's core can also sit behind a real HID transport: still a test/demo key.
    let label = if models::is_soft_key_aaguid(&aaguid) {
        SOFT_KEY_LABEL.to_owned()
    } else if !hid.product_string.trim().is_empty() {
        hid.product_string.trim().to_owned()
    } else {
        model.unwrap_or("security key").to_owned()
    };
    KeyInfo {
        id: key_id(hid, &d.aaguid),
        backend: KeyBackend::Hid,
        label,
        model: model.map(str::to_owned),
        aaguid,
        versions: d.versions.clone(),
        extensions: d.extensions.clone(),
        options: d.options.clone(),
        pin_protocols: d.pin_protocols.clone(),
        // The library reports absent getInfo members as 0, so 0 means "not reported".
        firmware_version: (d.firmware_version != 0).then_some(d.firmware_version),
        pin_set: d.pin_set(),
        pin_retries,
        min_pin_length: (d.min_pin_length != 0).then_some(d.min_pin_length),
        force_pin_change: d.is_fido_2_1().then_some(d.force_pin_change),
        remaining_discoverable_credentials: (d.remaining_discoverable_credentials != 0)
            .then_some(d.remaining_discoverable_credentials),
        id_from_serial: Some(serial_number(hid).is_some()),
    }
}

/// One opened security key.
pub struct HidKey {
    device: FidoKeyHid,
    hid: HidInfo,
    device_info: DeviceInfo,
    info: KeyInfo,
}

impl fmt::Debug for HidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HidKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl HidKey {
    fn open_device(hid: &HidInfo) -> Result<FidoKeyHid> {
        let cfg = lib_cfg();
        let param = hid.param.clone();
        guard("opening the key", || FidoKeyHid::new(&[param], &cfg))
    }

    fn configure(device: &mut FidoKeyHid, info: &DeviceInfo) {
        device.pin_protocol_version = info.pin_protocol();
        device.use_pre_credential_management = info.cred_mgmt() == CredMgmt::Preview;
    }

    fn open(hid: HidInfo) -> Result<Self> {
        let mut device = Self::open_device(&hid)?;
        let device_info = DeviceInfo::read(&device)?;
        Self::configure(&mut device, &device_info);
        let mut key = HidKey {
            device,
            info: key_info(&hid, &device_info, None),
            hid,
            device_info,
        };
        if key.device_info.pin_set() {
            key.info.pin_retries = key.read_retries().ok();
        }
        Ok(key)
    }

    fn read_retries(&self) -> Result<u32> {
        let retries = guard("reading PIN retries", || self.device.get_pin_retries())?;
        u32::try_from(retries).map_err(|_| Error::Malformed {
            reason: format!("negative PIN retries {retries}"),
        })
    }

    /// Open the device afresh and re-read getInfo (and retries), so PIN state is current.
    ///
    /// hidraw hands every input report to every open handle, and ctap-hid-fido2 reads the next
    /// report without checking its channel: while this handle sat idle, another program's
    /// traffic with the key (a browser, another agent command) queued up on it and would be read
    /// as the answer to our next request. A fresh handle starts with an empty queue.
    fn refresh(&mut self) -> Result<()> {
        self.reopen()?;
        self.device_info = DeviceInfo::read(&self.device)?;
        Self::configure(&mut self.device, &self.device_info);
        let retries = if self.device_info.pin_set() {
            self.read_retries().ok()
        } else {
            None
        };
        self.info = key_info(&self.hid, &self.device_info, retries);
        Ok(())
    }

    /// A fresh handle on the same device (see [`HidKey::refresh`]). A key that was open a moment
    /// ago and cannot be opened now has been pulled out.
    fn reopen(&mut self) -> Result<()> {
        let mut device = Self::open_device(&self.hid).map_err(|e| match e {
            Error::Backend { .. } => Error::KeyRemoved,
            other => other,
        })?;
        Self::configure(&mut device, &self.device_info);
        self.device = device;
        Ok(())
    }

    /// `PIN_INVALID` does not say how many attempts are left: ask the key.
    fn with_retries(&self, e: Error) -> Error {
        match e {
            Error::Ctap { code: 0x31, .. } => {
                Error::from_ctap_status(0x31, || self.read_retries().ok())
            }
            other => other,
        }
    }

    /// Run a call that checks the PIN ([`guard`]); a wrong PIN comes back with the attempts left.
    fn guard_pin<T, E: fmt::Display>(
        &self,
        what: &'static str,
        f: impl FnOnce() -> std::result::Result<T, E>,
    ) -> Result<T> {
        guard(what, f).map_err(|e| self.with_retries(e))
    }

    /// [`Self::guard_pin`] for a call that waits for a touch, which `prompt` asks for first.
    fn guard_touch<T, E: fmt::Display>(
        &self,
        prompt: &dyn Prompt,
        what: &'static str,
        f: impl FnOnce() -> std::result::Result<T, E>,
    ) -> Result<T> {
        prompt.touch(&self.info);
        self.guard_pin(what, f)
    }

    /// `PIN_POLICY_VIOLATION` does not say the minimum: take it from getInfo.
    fn policy(&self, e: Error) -> Error {
        match e {
            Error::PinPolicy { .. } => Error::PinPolicy {
                min_len: self.device_info.min_pin_len(),
            },
            other => other,
        }
    }

    fn check_new_pin(&self, pin: &str) -> Result<()> {
        let min_len = self.device_info.min_pin_len();
        if pin.chars().count() < min_len as usize || pin.len() > MAX_PIN_BYTES {
            return Err(Error::PinPolicy { min_len });
        }
        Ok(())
    }

    fn require_pin(&self, pin: &str) -> Result<()> {
        if !self.device_info.pin_set() {
            return Err(Error::PinNotSet);
        }
        if pin.is_empty() {
            return Err(Error::PinRequired);
        }
        Ok(())
    }

    /// [`Self::require_pin`] for a PIN about to be used (not changed): a key that demands a
    /// new PIN refuses every token until then, so say that instead of sending it.
    fn require_usable_pin(&self, pin: &str) -> Result<()> {
        self.require_pin(pin)?;
        if self.device_info.force_pin_change {
            return Err(Error::PinChangeRequired {
                min_len: self.device_info.min_pin_len(),
            });
        }
        Ok(())
    }

    fn require_config(&self, command: &ConfigCommand) -> Result<&str> {
        let (option, what) = match command {
            ConfigCommand::EnableEnterpriseAttestation => ("ep", "enterprise attestation"),
            ConfigCommand::ToggleAlwaysUv => ("authnrCfg", "authenticatorConfig"),
            ConfigCommand::SetMinPinLength(_) => ("setMinPINLength", "setMinPINLength"),
        };
        // `ep` is present (true or false) when the key offers enterprise attestation at all.
        let offered =
            self.device_info.options.contains_key(option) && self.device_info.option("authnrCfg");
        if !offered {
            return Err(Error::Unsupported {
                what: what.to_owned(),
            });
        }
        match &self.hid.param {
            HidParam::Path(path) => Ok(path),
            HidParam::VidPid { .. } => Err(Error::Unsupported {
                what: "authenticatorConfig on a key not reached through a hidraw path".to_owned(),
            }),
        }
    }

    fn require_cred_mgmt(&self) -> Result<()> {
        if self.device_info.cred_mgmt() == CredMgmt::Absent {
            return Err(Error::Unsupported {
                what: "credential management".to_owned(),
            });
        }
        Ok(())
    }
}

impl Authenticator for HidKey {
    fn info(&mut self) -> Result<KeyInfo> {
        self.refresh()?;
        Ok(self.info.clone())
    }

    fn set_pin(&mut self, new_pin: &str) -> Result<()> {
        self.refresh()?;
        if self.device_info.pin_set() {
            return Err(Error::PinAlreadySet);
        }
        self.check_new_pin(new_pin)?;
        guard("setting the PIN", || self.device.set_new_pin(new_pin)).map_err(|e| self.policy(e))
    }

    fn change_pin(&mut self, current_pin: &str, new_pin: &str) -> Result<()> {
        self.refresh()?;
        self.require_pin(current_pin)?;
        self.check_new_pin(new_pin)?;
        self.guard_pin("changing the PIN", || {
            self.device.change_pin(current_pin, new_pin)
        })
        .map_err(|e| self.policy(e))
    }

    fn pin_retries(&mut self) -> Result<u32> {
        self.reopen()?;
        self.read_retries()
    }

    fn make_credential(
        &mut self,
        req: &MakeCredentialRequest,
        pin: &str,
        prompt: &dyn Prompt,
    ) -> Result<MadeCredential> {
        self.refresh()?;
        self.require_usable_pin(pin)?;
        let user = PublicKeyCredentialUserEntity::new(
            Some(&req.user_id),
            Some(&req.user_name),
            Some(&req.user_display_name),
        );
        // The library hashes what it is given as the "challenge": handing it the serialized
        // clientDataJSON makes the key sign SHA-256(clientDataJSON), as WebAuthn requires.
        // Always ask for the key's minimum PIN length (CTAP 2.1 minPinLength): a key that
        // supports it and allows this relying party answers inside the attested
        // authenticatorData, which the service trusts over anything the agent says; others
        // ignore the request, as CTAP requires of unknown extensions.
        let mut builder = MakeCredentialArgsBuilder::new(&req.rp_id, &req.client_data_json)
            .pin(pin)
            .user_entity(&user)
            .extensions(&[CredentialExtension::MinPinLength((Some(true), None))]);
        if req.resident_key {
            builder = builder.resident_key();
        }
        for id in &req.exclude_credentials {
            builder = builder.exclude_authenticator(id);
        }
        let args = builder.build();
        let att = self.guard_touch(prompt, "making a credential", || {
            self.device.make_credential_with_args(&args)
        })?;

        let statement = match att.fmt.as_str() {
            "none" => None,
            "packed" => Some(AttestationStatement {
                alg: Some(i64::from(att.attstmt_alg)),
                sig: att.attstmt_sig.clone(),
                x5c: att.attstmt_x5c.clone(),
            }),
            "fido-u2f" => Some(AttestationStatement {
                alg: None,
                sig: att.attstmt_sig.clone(),
                x5c: att.attstmt_x5c.clone(),
            }),
            other => {
                // The library keeps only alg, sig and x5c, which cannot rebuild other formats.
                return Err(Error::Unsupported {
                    what: format!("attestation format {other}"),
                });
            }
        };
        if att.auth_data.len() < 37 || att.credential_descriptor.id.is_empty() {
            return Err(Error::Malformed {
                reason: "makeCredential answer without credential".into(),
            });
        }
        let attestation_object =
            attestation::attestation_object(&att.fmt, &att.auth_data, statement.as_ref());
        check_attestation(&attestation_object, &Sha256::digest(&req.client_data_json))?;
        Ok(MadeCredential {
            credential_id: att.credential_descriptor.id.clone(),
            attestation_object,
            format: att.fmt.clone(),
        })
    }

    fn get_assertion(
        &mut self,
        req: &GetAssertionRequest,
        pin: &str,
        prompt: &dyn Prompt,
    ) -> Result<Assertion> {
        self.refresh()?;
        self.require_usable_pin(pin)?;
        let mut builder = GetAssertionArgsBuilder::new(&req.rp_id, &req.client_data_json).pin(pin);
        for id in &req.allow_credentials {
            builder = builder.add_credential_id(id);
        }
        let args = builder.build();
        let assertions = self.guard_touch(prompt, "getting an assertion", || {
            self.device.get_assertion_with_args(&args)
        })?;
        let a = assertions
            .into_iter()
            .next()
            .ok_or_else(|| Error::Malformed {
                reason: "getAssertion answer without assertion".into(),
            })?;
        // A key may leave the credential out when the allow list had exactly one.
        let credential_id = match (a.credential_id.is_empty(), req.allow_credentials.as_slice()) {
            (false, _) => a.credential_id,
            (true, [only]) => only.clone(),
            (true, _) => {
                return Err(Error::Malformed {
                    reason: "getAssertion answer without credential id".into(),
                })
            }
        };
        Ok(Assertion {
            credential_id,
            authenticator_data: a.auth_data,
            signature: a.signature,
            user_handle: (!a.user.id.is_empty()).then_some(a.user.id),
            sign_count: a.sign_count,
        })
    }

    fn list_credentials(&mut self, rp_id: &str, pin: &str) -> Result<Vec<StoredCredential>> {
        self.refresh()?;
        self.require_cred_mgmt()?;
        self.require_usable_pin(pin)?;
        let rp_id_hash = attestation::rp_id_hash(rp_id);
        let found = guard("listing credentials", || {
            self.device
                .credential_management_enumerate_credentials(Some(pin), &rp_id_hash)
        });
        let creds = match found {
            Ok(creds) => creds,
            // A key answers NO_CREDENTIALS for an RP it holds nothing for.
            Err(Error::NoCredentials) => return Ok(Vec::new()),
            Err(e) => return Err(self.with_retries(e)),
        };
        Ok(creds
            .into_iter()
            .filter(|c| !c.public_key_credential_descriptor.id.is_empty())
            .map(|c| StoredCredential {
                rp_id: rp_id.to_owned(),
                credential_id: c.public_key_credential_descriptor.id,
                user_id: c.public_key_credential_user_entity.id,
                user_name: c.public_key_credential_user_entity.name,
            })
            .collect())
    }

    fn delete_credential(&mut self, credential_id: &[u8], pin: &str) -> Result<()> {
        self.refresh()?;
        self.require_cred_mgmt()?;
        self.require_usable_pin(pin)?;
        let descriptor = PublicKeyCredentialDescriptor {
            id: credential_id.to_vec(),
            ctype: "public-key".to_owned(),
        };
        self.guard_pin("deleting a credential", || {
            self.device
                .credential_management_delete_credential(Some(pin), descriptor)
        })
    }

    fn wink(&mut self) -> Result<()> {
        self.reopen()?;
        guard("winking", || self.device.wink())
    }

    fn selection(&mut self, prompt: &dyn Prompt) -> Result<()> {
        if !self.device_info.is_fido_2_1() {
            return Err(Error::Unsupported {
                what: "authenticatorSelection".to_owned(),
            });
        }
        self.reopen()?;
        prompt.touch(&self.info);
        guard("waiting for a touch", || self.device.selection())
    }

    fn config(&mut self, command: &ConfigCommand, pin: &str) -> Result<()> {
        self.refresh()?;
        let path = self.require_config(command)?.to_owned();
        self.require_usable_pin(pin)?;
        let token = self.guard_pin("getting a PIN token for authenticatorConfig", || {
            self.device
                .get_pinuv_auth_token_with_permission(pin, Permission::AuthenticatorConfiguration)
        })?;
        // ctap-hid-fido2 sends setMinPINLength's parameters as separate commands and has no
        // enterprise attestation: send the one request ourselves, on a channel of our own.
        let request = command.request(self.device_info.pin_protocol(), &token.key)?;
        crate::hidraw_cbor::transact(&path, &request, &|| {}, CONFIG_TIMEOUT)
            .map_err(|e| self.policy(e))?;
        self.refresh()
    }

    fn reset(&mut self, prompt: &dyn Prompt) -> Result<()> {
        // ctap-hid-fido2 3.6 has no authenticatorReset: send it over hidraw ourselves.
        let HidParam::Path(path) = &self.hid.param else {
            return Err(Error::Unsupported {
                what: "factory reset of a key not reached through a hidraw path".to_owned(),
            });
        };
        let path = path.clone();
        let info = self.info.clone();
        crate::hidraw_cbor::reset(&path, &|| prompt.touch(&info))?;
        self.refresh()
    }

    fn probe(&mut self, req: &crate::ProbeRequest) -> Result<Option<Assertion>> {
        // ctap-hid-fido2 3.6 always asks for user presence: send getAssertion with `up: false`
        // over hidraw ourselves, one allow list at a time as getInfo permits.
        self.refresh()?;
        let HidParam::Path(path) = &self.hid.param else {
            return Err(Error::Unsupported {
                what: "a silent probe of a key not reached through a hidraw path".to_owned(),
            });
        };
        let path = path.clone();
        let hash = Sha256::digest(&req.client_data_json);
        for batch in crate::probe::batches(&req.credential_ids, self.device_info.list_limits) {
            let request = crate::probe::request(&req.rp_id, &hash, &batch);
            match crate::hidraw_cbor::transact(&path, &request, &|| {}, CONFIG_TIMEOUT) {
                Ok(cbor) => return crate::probe::parse_answer(&cbor, &batch).map(Some),
                Err(Error::NoCredentials) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// The security keys plugged into this machine.
#[derive(Debug, Default, Clone)]
pub struct HidKeyProvider {
    _private: (),
}

impl HidKeyProvider {
    /// A provider over every FIDO HID device hidapi can see.
    pub fn new() -> Self {
        Self::default()
    }

    fn enumerate(&self) -> Result<Vec<HidKey>> {
        let devices = guard("listing HID devices", || {
            Ok::<_, Infallible>(ctap_hid_fido2::get_fidokey_devices())
        })?;
        let mut keys = Vec::with_capacity(devices.len());
        for hid in devices {
            let product = hid.product_string.clone();
            match HidKey::open(hid) {
                Ok(key) => keys.push(key),
                // Gone between listing and opening, or not answering: not a key we can use now.
                Err(e) => tracing::warn!(device = %product, error = %e, "skipping a FIDO device"),
            }
        }
        Ok(keys)
    }
}

impl KeyProvider for HidKeyProvider {
    fn list(&self) -> Result<Vec<KeyInfo>> {
        Ok(self.enumerate()?.into_iter().map(|k| k.info).collect())
    }

    fn open(&self, id: &str) -> Result<Box<dyn Authenticator>> {
        if !id.starts_with("hid:") {
            return Err(Error::NotFound { id: id.to_owned() });
        }
        match self.enumerate()?.into_iter().find(|k| k.info.id == id) {
            Some(key) => Ok(Box::new(key)),
            None => Err(Error::NotFound { id: id.to_owned() }),
        }
    }
}
