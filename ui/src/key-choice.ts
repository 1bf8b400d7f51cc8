// The keys plugged in, as a list to choose one from: shared by the wizard's "Add a key" step and
// the lost-key flow.
import type { KeyInfo } from "./bindings/KeyInfo";
import { esc, SOFT_KEY_LABEL } from "./view";
import { keySummary } from "./wizard";

export function keyName(k: KeyInfo | null | undefined): string {
  return k ? (k.model ?? k.label) : "your key";
}

export function softBadge(k: KeyInfo): string {
  return k.backend === "soft" ? ` <span class="badge soft">${esc(SOFT_KEY_LABEL)}</span>` : "";
}

/** Why a key cannot be chosen: it has no PIN, or its PIN is blocked (HTML, static text). */
export interface Unusable {
  noPin: string;
  blocked: string;
}

/**
 * One radio button a key, in the group `group` (ids `${group}-0`, `${group}-1`, …): a key
 * `usable` rejects is disabled and says why; the `chosen` one is checked.
 */
export function keyRadios(
  keys: KeyInfo[],
  group: string,
  chosen: KeyInfo | null,
  usable: (k: KeyInfo) => boolean,
  why: Unusable,
): string {
  return keys
    .map((k, i) => {
      const ok = usable(k);
      const checked = ok && chosen?.id === k.id ? " checked" : "";
      const reason = !k.pin_set ? why.noPin : k.pin_retries === 0 ? why.blocked : "";
      const hint = reason ? `<span class="hint">${reason}</span>` : "";
      return `<li class="card keychoice" data-key-id="${esc(k.id)}"><input type="radio" name="${group}" id="${group}-${i}" value="${esc(
        k.id,
      )}"${checked}${ok ? "" : " disabled"} /><label class="choice" for="${group}-${i}"><strong>${esc(keyName(k))}</strong>${softBadge(k)}
<span class="hint">${esc(keySummary(k))}</span>${hint}</label></li>`;
    })
    .join("");
}

/** Said in place of the list (element `id`) while no key is plugged in; `which` names the key. */
export function noKeyFound(keys: KeyInfo[], id: string, which: string): string {
  return keys.length === 0
    ? `<p id="${id}">No security key found. Plug in ${which}; this list updates by itself.</p>`
    : "";
}
