// Rendering of "Reclaim keys" (IT reclaim station): what the station did to each key it was
// asked to wipe. State in, HTML out (no Tauri, unit-tested in jsdom).
import type { KeyInfo } from "./bindings/KeyInfo";
import type { ReclaimedKey } from "./bindings/ReclaimedKey";
import type { UiError } from "./bindings/UiError";
import { esc } from "./view";
import { shortId } from "./wizard";

export interface ReclaimState {
  busy: boolean;
  /** What the last run did; null before the first run. */
  result: ReclaimedKey[] | null;
  error: UiError | null;
  /** Keys plugged in, to name the keys in the result. */
  keys: KeyInfo[];
  /** This laptop's device id, for the admin who makes it a reclaim station. */
  deviceId: string | null;
}

export function initialReclaimState(): ReclaimState {
  return { busy: false, result: null, error: null, keys: [], deviceId: null };
}

/** The agent's lower-case detail as a sentence. */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return "";
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** What was done to the key, in a sentence. */
export function doneText(r: ReclaimedKey): string {
  const n = r.receipt.removed_credential_ids.length;
  if (r.receipt.outcome === "failed") return "Not done.";
  if (r.receipt.action === "reset") return "Factory reset: its PIN and every passkey on it are gone, and it can be reused.";
  const why =
    r.directive.action === "delete_credentials"
      ? "it is a personal key, so it was not reset"
      : "the key could not be reset, so they were removed with its PIN";
  return `The organisation's passkeys were removed (${plural(n, "passkey", "passkeys")}); ${why}.`;
}

/** What the check afterwards found. */
export function checkText(r: ReclaimedKey): string {
  const left = r.receipt.remaining_credential_ids.length;
  if (r.receipt.outcome === "done") {
    return r.receipt.action === "reset"
      ? "No PIN and no passkeys left on the key."
      : "None of the organisation's passkeys left on the key.";
  }
  return left > 0 ? `${plural(left, "of the organisation's passkeys is", "of the organisation's passkeys are")} still on the key.` : "Not checked.";
}

/** A personal key that was left alone for want of its PIN. */
export function needsPin(r: ReclaimedKey): boolean {
  return r.receipt.outcome === "failed" && r.directive.action === "delete_credentials" && r.receipt.removed_credential_ids.length === 0;
}

/** Done at the key, but the service has not recorded it yet: the receipt waits on this laptop. */
export function receiptWaits(r: ReclaimedKey): boolean {
  return r.receipt.outcome === "done" && !r.recorded && r.queued === true;
}

export function reclaimSummary(result: ReclaimedKey[]): string {
  const waiting = result.filter(receiptWaits).length;
  if (waiting === 0) return recordedSummary(result);
  const keys = waiting === 1 ? "1 key was" : `${waiting} keys were`;
  const note = `${keys} wiped here, but the service could not be reached to record it: the receipt is kept on this laptop and sent when it can be.`;
  const rest = result.filter((r) => !receiptWaits(r));
  return rest.length === 0 ? note : `${recordedSummary(rest)} ${note}`;
}

function recordedSummary(result: ReclaimedKey[]): string {
  if (result.length === 0) return "No key plugged in belongs to someone who left: nothing to reclaim.";
  const recorded = result.filter((r) => r.recorded).length;
  if (recorded === result.length) {
    return result.length === 1
      ? "1 key reclaimed, and the service recorded it."
      : `${result.length} keys reclaimed, and the service recorded ${result.length === 2 ? "both" : "all of them"}.`;
  }
  if (recorded === 0) {
    return result.length === 1
      ? "The key was not reclaimed: what stopped it is below."
      : `None of the ${result.length} keys was reclaimed: what stopped them is below.`;
  }
  const rest = result.length - recorded;
  return `${recorded} of ${result.length} keys reclaimed and recorded; what stopped the other${rest === 1 ? "" : "s"} is below.`;
}

function keyLine(r: ReclaimedKey, keys: KeyInfo[]): string {
  const k = keys.find((x) => x.id === r.directive.key_id);
  const name = k ? (k.model ?? k.label) : "Security key";
  const id = k ? shortId(k) : r.directive.key_id;
  return `${name} · id ${id}`;
}

function card(r: ReclaimedKey, i: number, keys: KeyInfo[]): string {
  const ok = r.recorded;
  const badge = `<span class="badge ${ok ? "ok" : "warn"}">${ok ? "reclaimed" : "not reclaimed"}</span>`;
  const recorded = ok
    ? "Yes: the service records the key as reclaimed."
    : "No: the service still lists this key as not reclaimed. Fix what is said here and reclaim again.";
  return `<article class="card reclaimed" id="reclaimed-${i}" data-key-id="${esc(r.directive.key_id)}" aria-label="${esc(
    `Key of ${r.directive.person_display_name}`,
  )}">
<h3>Key of ${esc(r.directive.person_display_name)}${badge}</h3>
<p class="hint">${esc(keyLine(r, keys))}</p>
<dl>
<dt>Why</dt><dd>${esc(r.directive.reason)}</dd>
<dt>What was done</dt><dd class="reclaim-done">${esc(doneText(r))}</dd>
<dt>Check afterwards</dt><dd class="reclaim-check">${esc(checkText(r))}</dd>
<dt>Recorded by the service</dt><dd class="reclaim-recorded">${esc(recorded)}</dd>
</dl>
<p class="reason">${esc(sentence(r.receipt.detail))}</p>
</article>`;
}

export function renderReclaim(s: ReclaimState): string {
  const intro = `<h2 id="reclaim-title" tabindex="-1">Reclaim keys</h2>
<p>For IT, on a laptop an admin made a reclaim station. Plug in keys handed back by people who left, then reclaim them: Keywarden asks the service which keys to wipe. An organisation-owned key is factory reset (touch it when it blinks). A personal key is never reset: only the organisation's passkeys are removed, which needs its PIN.</p>
<form id="reclaim-form" novalidate>
<label for="reclaim-pin">PIN of a personal key (only when one is plugged in)</label>
<input id="reclaim-pin" type="password" autocomplete="off" aria-describedby="reclaim-pin-hint" />
<p class="hint" id="reclaim-pin-hint">Its owner types it. Organisation-owned keys need no PIN.</p>
<div class="actions"><button id="reclaim-run" class="primary" type="submit"${s.busy ? " disabled" : ""}>Reclaim the keys plugged in</button></div>
</form>`;
  let out = "";
  if (s.busy) {
    out = `<p class="touch" id="reclaim-touch">Reclaiming… touch each key when it blinks, and keep it plugged in.</p>`;
  } else if (s.error) {
    const device =
      s.error.code === "not_a_reclaim_station" && s.deviceId
        ? `<p class="hint">This laptop is device <span class="keyid">${esc(s.deviceId)}</span>.</p>`
        : "";
    out = `<div id="reclaim-error" class="alert" role="alert"><p>${esc(s.error.message)}</p>${device}</div>`;
  } else if (s.result) {
    const pin = s.result.some(needsPin)
      ? `<p class="warning" id="reclaim-needs-pin">A personal key needs its PIN: ask its owner to type it above, then reclaim again.</p>`
      : "";
    out = `<p id="reclaim-summary" role="status"><strong>${esc(reclaimSummary(s.result))}</strong></p>${pin}
${s.result.map((r, i) => card(r, i, s.keys)).join("\n")}`;
  }
  return `${intro}<div id="reclaim-result" aria-live="polite">${out}</div>`;
}
