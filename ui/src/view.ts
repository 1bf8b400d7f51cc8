// Pure rendering: data in, HTML out. Kept free of Tauri so it is unit-tested in jsdom.
import type { KeyInfo } from "./bindings/KeyInfo";
import { minPinLength } from "./wizard";
import type { Posture } from "./bindings/Posture";
import type { Observed } from "./bindings/Observed";
import type { NoKeyFinding } from "./bindings/NoKeyFinding";
import type { KeyInventory } from "./bindings/KeyInventory";
import type { CheckinStatus } from "./bindings/CheckinStatus";

export const SOFT_KEY_LABEL = "software key (test/demo)";

export function esc(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** Why no key is found, and how to fix it, as the agent diagnosed it. */
export function renderFindings(findings: NoKeyFinding[]): string {
  if (findings.length === 0) return "";
  const items = findings
    .map((f) => `<li data-code="${esc(f.code)}"><strong>${esc(f.problem)}.</strong> ${esc(f.fix)}.</li>`)
    .join("");
  return `<div class="card" id="findings"><h3>Why no key is found</h3><ul class="findings">${items}</ul></div>`;
}

export function renderInventory(inv: KeyInventory): string {
  if (inv.keys.length === 0) return renderKeys([]) + renderFindings(inv.findings);
  return renderKeys(inv.keys);
}

function yesNo(v: boolean | null | undefined, yes: string, no: string): string {
  return v == null ? "not reported" : v ? yes : no;
}

export function renderKeys(keys: KeyInfo[]): string {
  if (keys.length === 0) {
    return `<p class="card">No security key found. Plug one in. On Linux, if a key is plugged in but not seen, install the udev rule for FIDO devices and plug the key in again.</p>`;
  }
  return keys
    .map((k) => {
      const soft = k.backend === "soft" ? `<span class="badge soft">${esc(SOFT_KEY_LABEL)}</span>` : "";
      const pin = k.pin_set
        ? `set${k.pin_retries != null ? `, ${k.pin_retries} retries left` : ""}`
        : "not set";
      const slots = k.remaining_discoverable_credentials != null ? String(k.remaining_discoverable_credentials) : "not reported";
      return `<article class="card" aria-label="${esc(k.label)}">
  <h3>${esc(k.model ?? k.label)}${soft}</h3>
  <dl>
    <dt>AAGUID</dt><dd>${esc(k.aaguid)}</dd>
    <dt>Versions</dt><dd>${esc(k.versions.join(", "))}</dd>
    <dt>Firmware</dt><dd>${k.firmware_version != null ? esc(String(k.firmware_version)) : "not reported"}</dd>
    <dt>PIN</dt><dd>${esc(pin)}</dd>
    <dt>Minimum PIN length</dt><dd>${k.min_pin_length != null ? esc(String(k.min_pin_length)) : "not reported"}</dd>
    <dt>PIN change forced</dt><dd>${yesNo(k.force_pin_change, "yes, before next use", "no")}</dd>
    <dt>Always asks for PIN</dt><dd>${k.options["alwaysUv"] ? "yes (alwaysUv)" : "no"}</dd>
    <dt>Free passkey slots</dt><dd>${esc(slots)}</dd>
    <dt>Key id</dt><dd>${esc(k.id)}</dd>
  </dl>
${k.pin_set ? pinChangeForm(k) : ""}
  <form class="creds" data-key="${esc(k.id)}" novalidate>
    <label for="creds-pin-${esc(k.id)}">PIN, to list your organisation's passkeys on this key</label>
    <input id="creds-pin-${esc(k.id)}" type="password" autocomplete="off" />
    <div class="actions"><button type="submit">Show passkeys</button></div>
    <div class="creds-out" aria-live="polite"></div>
  </form>
</article>`;
    })
    .join("\n");
}

/** A key's "Change PIN" form: the current PIN, the new one twice, with the key's minimum. */
function pinChangeForm(k: KeyInfo): string {
  const id = esc(k.id);
  const min = minPinLength(k);
  const asks = k.force_pin_change ? "This key asks for a new PIN before it can be used. " : "";
  return `<form class="pin-change" data-pin-key="${id}" data-min="${min}" novalidate>
    <p class="hint" id="pc-rules-${id}">${asks}Change the PIN: type the current one, then a new one of at least ${min} characters.</p>
    <label for="pc-pin-${id}">Current PIN</label><input id="pc-pin-${id}" name="pin" type="password" autocomplete="off" />
    <label for="pc-new-${id}">New PIN</label><input id="pc-new-${id}" name="new" type="password" autocomplete="new-password" aria-describedby="pc-rules-${id}" />
    <label for="pc-again-${id}">New PIN again</label><input id="pc-again-${id}" name="again" type="password" autocomplete="new-password" />
    <div class="actions"><button type="submit">Change PIN</button></div>
    <div class="pc-out" aria-live="polite"></div>
  </form>`;
}

/** ok / needs attention / unknown, for signals where a good value is defined. */
export type Verdict = "ok" | "attention" | "unknown";

export function verdict(o: Observed<boolean>): Verdict {
  if (o.state === "unknown") return "unknown";
  return o.value ? "ok" : "attention";
}

function cell<T>(o: Observed<T>, show: (v: T) => string): string {
  if (o.state === "unknown") {
    return `<span class="state-unknown">unknown</span> <span class="reason">${esc(o.reason)}</span>`;
  }
  const detail = o.detail ? ` <span class="reason">${esc(o.detail)}</span>` : "";
  return `${esc(show(o.value))}${detail}`;
}

function judged(name: string, o: Observed<boolean>, on: string, off: string): string {
  const v = verdict(o);
  const label = v === "ok" ? "ok" : v === "attention" ? "needs attention" : "unknown";
  const body =
    o.state === "unknown"
      ? `<span class="reason">${esc(o.reason)}</span>`
      : `${esc(o.value ? on : off)}${o.detail ? ` <span class="reason">${esc(o.detail)}</span>` : ""}`;
  return `<tr><th scope="row">${esc(name)}</th><td><span class="state-${v}">${label}</span></td><td>${body}</td></tr>`;
}

export function renderPosture(p: Posture): string {
  const plain = (name: string, html: string) =>
    `<tr><th scope="row">${esc(name)}</th><td></td><td>${html}</td></tr>`;
  const rows = [
    judged("Disk encryption", p.disk_encryption, "system disk encrypted", "system disk not encrypted"),
    judged("Firewall", p.firewall, "active", "not active"),
    judged("Secure boot", p.secure_boot, "enforced", "off"),
    judged("Screen lock", p.screen_lock, "locks by itself", "does not lock by itself"),
    plain("Screen locks after", cell(p.screen_lock_delay_secs, (v) => `${v} s of inactivity`)),
    judged("System integrity protection", p.integrity_protection, "on", "off"),
    judged("Application verification", p.app_verification, "on", "off"),
    judged("Real-time malware protection", p.malware_protection, "on", "off"),
    judged("Device management (MDM)", p.mdm_enrolled, "enrolled", "not enrolled"),
    plain("Operating system", cell(p.os_name, (v) => v) + " " + cell(p.os_version, (v) => v)),
    plain("Kernel", cell(p.kernel_version, (v) => v)),
    plain("Host name", cell(p.hostname, (v) => v)),
    plain("Architecture", cell(p.arch, (v) => v)),
    plain("Booted", cell(p.boot_time, (v) => new Date(v * 1000).toISOString())),
    plain("Last OS update", cell(p.last_os_update, (v) => new Date(v * 1000).toISOString())),
  ];
  return `<table><thead><tr><th scope="col">Signal</th><th scope="col">State</th><th scope="col">Value</th></tr></thead><tbody>${rows.join("")}</tbody></table>
<p class="reason">Collected ${esc(new Date(p.collected_at_ms).toLocaleString())} (posture schema ${p.schema_version}).</p>`;
}

function when(ms: number | null | undefined): string {
  return ms == null ? "never" : new Date(ms).toLocaleString();
}

/** The background check-in: last report, its outcome, and what waits in the outbox. */
export function renderCheckin(c: CheckinStatus): string {
  const outcome =
    c.last_attempt_at_ms == null
      ? "No report has been sent from this laptop yet."
      : c.last_error
        ? `The last check-in (${when(c.last_attempt_at_ms)}) failed: ${c.last_error}`
        : `Last reported ${when(c.last_success_at_ms)}.`;
  const pending =
    c.outbox_pending === 0
      ? "Nothing is waiting to be sent."
      : `${c.outbox_pending} report${c.outbox_pending === 1 ? "" : "s"} waiting to be sent (kept across restarts).`;
  const minutes = Math.round(c.interval_seconds / 60);
  return `<h3>Reporting to IT</h3>
<p id="checkin-outcome"${c.last_error ? ` class="warning"` : ""}>${esc(outcome)}</p>
<p id="checkin-outbox">${esc(pending)}</p>
<p class="hint">Keywarden reports every ${minutes} minute${minutes === 1 ? "" : "s"} and when a key is plugged in.</p>
<div class="actions"><button id="checkin-now" data-action="checkin">Check in now</button></div>`;
}

export function renderError(e: unknown): string {
  const msg =
    typeof e === "object" && e !== null && "message" in e ? String((e as { message: unknown }).message) : String(e);
  return `<p class="card error" role="alert">${esc(msg)}</p>`;
}
