// Rendering of the enrolment wizard: state in, HTML out (no Tauri, unit-tested in jsdom).
import type { CredentialView } from "./bindings/CredentialView";
import type { KeyInfo } from "./bindings/KeyInfo";
import type { NoKeyFinding } from "./bindings/NoKeyFinding";
import type { UiError } from "./bindings/UiError";
import type { WizardSession } from "./bindings/WizardSession";
import { esc, renderFindings, SOFT_KEY_LABEL } from "./view";
import { keyName, keyRadios, noKeyFound, softBadge } from "./key-choice";
import {
  canProve,
  coverageText,
  covered,
  keySummary,
  LOST_KEY_ADVICE,
  minPinLength,
  needsPinChange,
  onKeyText,
  pinWarning,
  recovery,
  STEPS,
  webLinkOpenedText,
  type Step,
} from "./wizard";

export interface WizardState {
  step: Step;
  session: WizardSession | null;
  keys: KeyInfo[];
  findings: NoKeyFinding[];
  chosen: KeyInfo | null;
  error: UiError | null;
  /** Keys enrolled in this session (the service refuses them as backups). */
  usedKeyIds: string[];
  lastEnrolled: CredentialView | null;
  ticketFromLink: boolean;
  busy: boolean;
  /** A problem with what was typed, found before anything was sent. */
  inputProblem: string | null;
  /** The session was opened by a recovery ticket: it enrols a replacement for a lost key. */
  replacing: boolean;
  /** "Add a key": the session is opened by confirming with a key the person already has. */
  adding: boolean;
  /** The key chosen to confirm with ("Add a key"); it cannot be the new key. */
  proveKeyId: string | null;
  /** "Add this laptop or your phone": waiting for the service's one-time link. */
  webLinkBusy: boolean;
  /** When the link handed to the browser stops working (unix ms); null before one was. */
  webLinkUntil: number | null;
}

export function initialState(): WizardState {
  return {
    step: "ticket",
    session: null,
    keys: [],
    findings: [],
    chosen: null,
    error: null,
    usedKeyIds: [],
    lastEnrolled: null,
    ticketFromLink: false,
    busy: false,
    inputProblem: null,
    replacing: false,
    adding: false,
    proveKeyId: null,
    webLinkBusy: false,
    webLinkUntil: null,
  };
}

export function renderProgress(step: Step, adding = false): string {
  // "Add a key" starts by confirming with a key you have, where a ticket would be.
  const at = STEPS.findIndex((s) => s.step === (step === "prove" ? "ticket" : step));
  const steps = adding ? STEPS.map((s) => (s.step === "ticket" ? { ...s, title: "Your key" } : s)) : STEPS;
  return steps.map((s, i) => {
    const attrs = i === at ? ` aria-current="step"` : i < at ? ` class="done"` : "";
    const mark = i < at ? "✓ " : `${i + 1}. `;
    return `<li${attrs}>${mark}${esc(s.title)}</li>`;
  }).join("");
}

function errorBox(s: WizardState): string {
  if (!s.error) return "";
  const r = recovery(s.error, s.step);
  return `<div id="error" class="alert" role="alert"><p>${esc(s.error.message)}</p>
<div class="actions"><button id="error-action" data-action="recover" data-step="${r.step}">${esc(r.action)}</button></div></div>`;
}

function personLine(s: WizardSession | null, replacing: boolean): string {
  if (!s) return "";
  const replacement = replacing
    ? `<p id="replacing">This enrols the replacement for your lost key: plug in the new key. The lost one is revoked once the new one is enrolled.</p>`
    : "";
  return `<p class="person" id="person">Enrolment for <strong>${esc(s.person.display_name)}</strong> &lt;${esc(
    s.person.user_name,
  )}&gt;. ${esc(coverageText(s))}</p>${replacement}`;
}

function ticketStep(s: WizardState): string {
  const link = s.ticketFromLink
    ? `<p class="hint">A ticket arrived from an enrolment link. Continue with it, or paste another one.</p>`
    : "";
  return `<h2 id="step-title" tabindex="-1">Redeem your enrolment ticket</h2>
<p>IT sent you a one-time ticket. It shows whose keys you are enrolling and opens the enrolment.</p>
${link}
<form id="ticket-form" novalidate>
<label for="ticket">Enrolment ticket</label>
<input id="ticket" type="password" autocomplete="off" spellcheck="false" aria-describedby="ticket-hint" />
<p class="hint" id="ticket-hint">It starts with kwt_. It works once, and only for a short time.</p>
<div class="actions"><button id="ticket-continue" class="primary" type="submit"${s.busy ? " disabled" : ""}>Continue</button></div>
</form>
<p class="hint" id="add-key-offer">Already have a key enrolled? <button id="to-add-key" data-action="add-key">Add a key with it</button> No ticket needed: you confirm it is you with the key you have.</p>`;
}

/** The key to confirm with: the one chosen before if still plugged in, else the only usable one. */
export function proveKey(s: Pick<WizardState, "keys" | "proveKeyId">): KeyInfo | null {
  const k = s.keys.find((x) => x.id === s.proveKeyId);
  if (k) return k;
  const usable = s.keys.filter(canProve);
  return usable.length === 1 ? usable[0] : null;
}

function proveStep(s: WizardState): string {
  const chosen = proveKey(s);
  const items = keyRadios(s.keys, "prove-key", chosen, canProve, {
    noPin: "No PIN: this key was never enrolled, so it cannot confirm who you are. It can be the new key.",
    blocked: "Its PIN is blocked, so it cannot confirm who you are.",
  });
  const empty = noKeyFound(s.keys, "prove-no-key", "a key you already have");
  const warn = pinWarning(s.error?.retries_left ?? chosen?.pin_retries);
  const problem = s.inputProblem ? `<p id="prove-problem" class="warning" role="alert">${esc(s.inputProblem)}</p>` : "";
  const touch = s.busy
    ? `<p class="touch" id="touch-now">Touch ${esc(keyName(chosen))} to confirm it is you, while it blinks.</p>`
    : "";
  return `<h2 id="step-title" tabindex="-1">Add a key</h2>
<p>To add another security key, first confirm it is you with a key you already have: choose it, type its PIN, and touch it when it blinks. Then plug in the new key.</p>
<form id="prove-form" novalidate>
<fieldset><legend>The key you already have</legend>${empty}<ul class="plain" id="prove-key-list">${items}</ul></fieldset>
<label for="prove-pin">PIN of that key</label><input id="prove-pin" type="password" autocomplete="off" />
${warn ? `<p class="warning" id="prove-pin-warning">${esc(warn)}</p>` : ""}${problem}${touch}
<div class="actions"><button id="prove-continue" class="primary" type="submit"${s.busy ? " disabled" : ""}>Continue</button><button type="button" data-action="recover" data-step="ticket">Back</button></div>
</form>`;
}

function chooseStep(s: WizardState): string {
  const backup = s.usedKeyIds.length > 0;
  const title = backup ? "Plug in your backup key" : s.adding ? "Plug in the new key" : "Plug in your security key";
  let body: string;
  if (s.keys.length === 0) {
    body = `<p id="no-key">No security key found yet. Plug one in; this list updates by itself.</p>${renderFindings(s.findings)}`;
  } else {
    const items = s.keys
      .map((k) => {
        const proved = s.adding && k.id === s.proveKeyId;
        const used = proved || s.usedKeyIds.includes(k.id);
        const label = esc(k.model ?? k.label);
        const state = proved
          ? `<p class="hint">You confirmed with this key: it is enrolled already. Plug in the new key.</p>`
          : used
            ? `<p class="hint">Already enrolled in this session: use a different key.</p>`
            : "";
        return `<li class="card keychoice" data-key-id="${esc(k.id)}"><div><strong>${label}</strong>${softBadge(k)}
<p class="hint">${esc(keySummary(k))}</p>${state}</div>
<div class="actions"><button data-action="wink" data-key="${esc(k.id)}" aria-label="Blink ${label}">Blink</button>
<button class="primary" data-action="use" data-key="${esc(k.id)}" aria-label="Use ${label}"${used ? " disabled" : ""}>Use this key</button></div></li>`;
      })
      .join("");
    const several =
      s.keys.length > 1
        ? `<p>Several keys are plugged in. Choose one below, or <button id="select-touch" data-action="touch-select">touch the one you want</button>.</p>`
        : "";
    body = `${several}<ul class="plain" id="key-list" aria-label="Keys plugged in">${items}</ul>`;
  }
  return `<h2 id="step-title" tabindex="-1">${title}</h2>${personLine(s.session, s.replacing && s.usedKeyIds.length === 0)}${body}`;
}

function pinStep(s: WizardState): string {
  const k = s.chosen;
  if (!k) return "";
  const head = `<h2 id="step-title" tabindex="-1">${k.pin_set ? "Enter the key's PIN" : "Choose a PIN for this key"}</h2>
<p>${esc(k.model ?? k.label)}${softBadge(k)}</p>`;
  const problem = s.inputProblem ? `<p id="pin-problem" class="warning" role="alert">${esc(s.inputProblem)}</p>` : "";
  if (!k.pin_set) {
    const min = minPinLength(k, s.session);
    return `${head}<form id="pin-form" novalidate>
<p id="pin-rules" class="hint">This key has no PIN yet. Choose one of at least ${min} characters; you will type it each time you use the key.</p>
<label for="new-pin">New PIN</label><input id="new-pin" type="password" autocomplete="new-password" aria-describedby="pin-rules" />
<label for="new-pin-again">New PIN again</label><input id="new-pin-again" type="password" autocomplete="new-password" />
${problem}
<div class="actions"><button id="pin-continue" class="primary" type="submit">Set PIN and continue</button><button type="button" data-action="cancel">Cancel, choose another key</button></div></form>`;
  }
  const retries = s.error?.retries_left ?? k.pin_retries;
  const warn = pinWarning(retries);
  const retriesText = `${retries === 0 ? "The PIN is blocked." : retries === 1 ? "1 attempt left before the key locks." : retries != null ? `${retries} attempts left before the key locks.` : ""}`;
  if (needsPinChange(k)) {
    const min = minPinLength(k, s.session);
    return `<h2 id="step-title" tabindex="-1">This key asks for a new PIN</h2>
<p>${esc(k.model ?? k.label)}${softBadge(k)}</p><form id="pin-form" novalidate>
<p id="pin-rules" class="hint">Before it can be used, this key needs a new PIN: your organisation set it so, or raised the key's minimum PIN length. Type the current PIN, then a new one of at least ${min} characters.</p>
<label for="pin">Current PIN</label><input id="pin" type="password" autocomplete="off" aria-describedby="pin-retries" />
<p id="pin-retries" class="hint">${retriesText}</p>
${warn ? `<p class="warning" id="pin-warning">${esc(warn)}</p>` : ""}
<label for="new-pin">New PIN</label><input id="new-pin" type="password" autocomplete="new-password" aria-describedby="pin-rules" />
<label for="new-pin-again">New PIN again</label><input id="new-pin-again" type="password" autocomplete="new-password" />
${problem}
<div class="actions"><button id="pin-continue" class="primary" type="submit">Change PIN and continue</button><button type="button" data-action="cancel">Cancel, choose another key</button></div></form>`;
  }
  return `${head}<form id="pin-form" novalidate>
<label for="pin">PIN</label><input id="pin" type="password" autocomplete="off" aria-describedby="pin-retries" />
<p id="pin-retries" class="hint">${retriesText}</p>
${warn ? `<p class="warning" id="pin-warning">${esc(warn)}</p>` : ""}${problem}
<div class="actions"><button id="pin-continue" class="primary" type="submit">Continue</button><button type="button" data-action="cancel">Cancel, choose another key</button></div></form>`;
}

function touchStep(s: WizardState): string {
  const k = s.chosen;
  return `<h2 id="step-title" tabindex="-1">Touch your key now</h2>
<p class="touch" id="touch-now">Touch ${esc(k ? (k.model ?? k.label) : "your key")} while it blinks.</p>
<p class="hint">Keep it plugged in until this page says it is done.</p>`;
}

/**
 * The second device class: after a key, a passkey on this laptop or on a phone, added in the
 * browser. The app only opens the service's one-time link; the browser makes the passkey.
 */
function webOffer(s: WizardState): string {
  if (!s.session || s.session.enrolled.length === 0) return "";
  const opened =
    s.webLinkUntil != null
      ? `<p id="web-link-status" role="status" tabindex="-1">${esc(webLinkOpenedText(s.webLinkUntil))}</p>`
      : `<p id="web-link-status" role="status"></p>`;
  const label = s.webLinkUntil != null ? "Open the browser again" : "Add this laptop or your phone";
  return `<section id="web-offer" class="card" aria-labelledby="web-offer-title">
<h3 id="web-offer-title">Add this laptop or your phone</h3>
<p>A passkey on this laptop or on your phone is another way to sign in, should a key be lost or left at home. You add it in your web browser: Keywarden opens your organisation's page there with a link that works once.</p>
<div class="actions"><button id="open-web" data-action="open-web"${s.webLinkBusy ? " disabled" : ""}>${label}</button></div>
${opened}
</section>`;
}

function enrolledStep(s: WizardState): string {
  const c = s.lastEnrolled;
  const sess = s.session;
  if (!c || !sess) return "";
  const onKey = onKeyText(c);
  const more = covered(sess)
    ? `<p>You meet your organisation's policy. You may add another backup key, or finish.</p>
<div class="actions"><button id="finish" class="primary" data-action="finish">Finish</button><button id="backup" data-action="backup">Enrol another key</button></div>`
    : sess.active_authenticators >= sess.required_authenticators && sess.policy_text
      ? `<p class="warning" id="policy-text">${esc(sess.policy_text)}</p>
<div class="actions"><button id="finish" data-action="finish">Finish for now</button><button id="backup" data-action="backup">Enrol another key</button></div>`
      : `<p class="warning">With a single key, losing it locks you out. Enrol a backup key now: a different physical key.</p>
<div class="actions"><button id="backup" class="primary" data-action="backup">Enrol a backup key</button></div>`;
  return `<h2 id="step-title" tabindex="-1">Key enrolled</h2>
<p id="enrolled">${esc(c.model ?? "Your key")} is enrolled: the service verified the credential (attestation ${esc(
    c.attestation_format,
  )}, ${esc(c.attestation_type)}).</p>
${onKey ? `<p id="on-key">${esc(onKey)}</p>` : ""}
${s.replacing && sess.enrolled.length === 1 ? `<p id="lost-revoked">It replaces your lost key, which is revoked now: it can never be used again.</p>` : ""}
<p id="coverage"><strong>${esc(coverageText(sess))}</strong></p>${more}${webOffer(s)}`;
}

function summaryStep(s: WizardState): string {
  const sess = s.session;
  if (!sess) return "";
  const items = sess.enrolled
    .map((c) => {
      const model = c.model ?? "security key";
      const soft = c.software_key && !model.includes(SOFT_KEY_LABEL) ? ` (${esc(SOFT_KEY_LABEL)})` : "";
      return `<li>${esc(model)}${soft}, enrolled ${esc(new Date(Number(c.created_at_ms)).toLocaleString())}</li>`;
    })
    .join("");
  return `<h2 id="step-title" tabindex="-1">All set</h2>
<p id="summary"><strong>${esc(sess.person.display_name)}</strong>. ${esc(coverageText(sess))}</p>
<ul>${items}</ul>
<p id="lost-key">${esc(LOST_KEY_ADVICE)}</p>${webOffer(s)}
<div class="actions"><button data-action="restart">Enrol with another ticket</button></div>`;
}

export function renderWizard(s: WizardState): string {
  const body = {
    ticket: ticketStep,
    prove: proveStep,
    choose: chooseStep,
    pin: pinStep,
    touch: touchStep,
    enrolled: enrolledStep,
    summary: summaryStep,
  }[s.step](s);
  return errorBox(s) + body;
}
