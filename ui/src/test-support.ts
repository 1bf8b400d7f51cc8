// Fixtures shared by the view tests: the software key (test/demo) as getInfo describes it, a
// credential as the service lists it, and rendered HTML as a document to query.
import type { CredentialView } from "./bindings/CredentialView";
import type { KeyInfo } from "./bindings/KeyInfo";

/** The software key `id` with a PIN set, as the agent lists it, with `patch` applied. */
export function softKey(id: string, patch: Partial<KeyInfo> = {}): KeyInfo {
  return {
    id,
    backend: "soft",
    label: "software key (test/demo)",
    model: "Keywarden software key (test/demo)",
    aaguid: "85e17f29-90da-40f7-8f3f-526b9449f38f",
    versions: ["FIDO_2_1"],
    extensions: [],
    options: {},
    pin_protocols: [2],
    firmware_version: 3,
    pin_set: true,
    pin_retries: 8,
    min_pin_length: 4,
    force_pin_change: false,
    remaining_discoverable_credentials: 25,
    ...patch,
  };
}

/** An active software-key credential of person `p1`, enrolled by the agent, with `patch` applied. */
export function credential(patch: Partial<CredentialView> = {}): CredentialView {
  return {
    id: "c",
    person_id: "p1",
    aaguid: "85e17f29-90da-40f7-8f3f-526b9449f38f",
    model: "Keywarden software key (test/demo)",
    software_key: true,
    attestation_format: "packed",
    attestation_type: "basic",
    enrolled_on_device: "d1",
    status: "active",
    created_at_ms: 1_760_000_000_000,
    device_class: "software",
    synced: false,
    name: null,
    enrolled_via: "agent",
    ...patch,
  };
}

/** Rendered HTML as a document, to query. */
export function dom(html: string): Document {
  const d = document.implementation.createHTMLDocument("t");
  d.body.innerHTML = html;
  return d;
}
