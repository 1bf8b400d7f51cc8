// Rendering of "Lost a key?" and of the recovery form: state in, HTML out (no Tauri,
// unit-tested in jsdom).
import type { CredentialView } from "./bindings/CredentialView";
import type { KeyInfo } from "./bindings/KeyInfo";
import type { SignInResponse } from "./bindings/SignInResponse";
import { esc } from "./view";
import {
  AFTER_LOST,
  canReport,
  chosenKey,
  credentialName,
  lostRecovery,
  shortCredentialId,
  statusText,
  type LostState,
} from "./lost";
import { pinWarning } from "./wizard";
import { keyName, keyRadios, noKeyFound } from "./key-choice";

function errorBox(s: LostState): string {
  if (!s.error) return "";
  const r = lostRecovery(s.error, s.step);
  return `<div id="lost-error" class="alert" role="alert"><p>${esc(s.error.message)}</p>
<div class="actions"><button id="lost-error-action" data-action="lost-go" data-step="${r.step}">${esc(r.action)}</button></div></div>`;
}

function problem(s: LostState): string {
  return s.inputProblem ? `<p id="lost-problem" class="warning" role="alert">${esc(s.inputProblem)}</p>` : "";
}

/** The keys plugged in, as radio buttons; `none` adds "I have no key left" (recovery). */
function keyChoice(s: LostState, legend: string, none: boolean): string {
  const chosen = s.noKeyLeft && none ? null : chosenKey(s);
  // A key without a PIN holds no passkey of the organisation (enrolment sets one).
  const items = keyRadios(s.keys, "lost-key", chosen, (k) => k.pin_set && k.pin_retries !== 0, {
    noPin: "No PIN: this key was never enrolled, so it cannot sign you in.",
    blocked: "Its PIN is blocked, so it cannot sign you in.",
  });
  const empty = noKeyFound(s.keys, "lost-no-key", "a key you still have");
  const noneItem = none
    ? `<li class="card keychoice"><input type="radio" name="lost-key" id="lost-key-none" value=""${
        s.noKeyLeft ? " checked" : ""
      } /><label class="choice" for="lost-key-none"><strong>I have no key left</strong>
<span class="hint">Only when the help desk told you two colleagues approved your recovery instead.</span></label></li>`
    : "";
  return `<fieldset><legend>${esc(legend)}</legend>${empty}<ul class="plain" id="lost-key-list">${items}${noneItem}</ul></fieldset>`;
}

function pinField(s: LostState, id: string, label: string): string {
  const k = chosenKey(s);
  const warn = pinWarning(s.error?.retries_left ?? k?.pin_retries);
  return `<label for="${id}">${esc(label)}</label><input id="${id}" type="password" autocomplete="off" />
${warn ? `<p class="warning" id="lost-pin-warning">${esc(warn)}</p>` : ""}`;
}

function signInStep(s: LostState): string {
  return `<h2 id="lost-title" tabindex="-1">Lost a key?</h2>
<p>If one of your security keys is lost or stolen, report it here at once. Sign in with a key you still have, then choose the lost one: it stops working straight away.</p>
<form id="lost-sign-in-form" novalidate>
${keyChoice(s, "The key you still have", false)}
${pinField(s, "lost-pin", "PIN of that key")}
${problem(s)}
<div class="actions"><button id="lost-sign-in" class="primary" type="submit"${s.busy ? " disabled" : ""}>Sign in</button></div>
</form>
<p class="hint">Already reported it, and the help desk gave you a recovery ticket? <button id="lost-to-recover" data-action="lost-go" data-step="recover">Enrol a replacement</button></p>`;
}

function touchStep(s: LostState, confirming: boolean): string {
  const k = chosenKey(s);
  const what = confirming ? "to confirm that the key is lost" : "to sign in";
  return `<h2 id="lost-title" tabindex="-1">Touch your key now</h2>
<p class="touch" id="lost-touch">Touch ${esc(keyName(k))} ${what}, while it blinks.</p>
<p class="hint">Keep it plugged in until this page says it is done.</p>`;
}

function personLine(who: SignInResponse, k: KeyInfo | null): string {
  return `<p class="person" id="lost-person">Signed in as <strong>${esc(who.person.display_name)}</strong> &lt;${esc(
    who.person.user_name,
  )}&gt; with ${esc(keyName(k))}.</p>`;
}

function statusBadge(c: CredentialView): string {
  const cls = c.status === "active" ? "ok" : "attention";
  return `<span class="state-${cls}" data-status="${esc(c.status)}">${esc(statusText(c.status))}</span>`;
}

/** The person's credentials with their status; `pick` adds "This one is lost" buttons. */
export function renderCredentials(who: SignInResponse, pick: boolean): string {
  const items = who.credentials
    .map((c) => {
      const mine = c.id === who.signed_in_with;
      const badge = mine ? ` <span class="badge">you signed in with this key</span>` : "";
      const name = credentialName(c);
      const action =
        pick && canReport(who, c)
          ? `<div class="actions"><button data-action="lost-pick" data-credential="${esc(c.id)}" aria-label="${esc(
              `This key is lost: ${name}`,
            )}">This one is lost</button></div>`
          : "";
      return `<li class="card keychoice credential" data-credential-id="${esc(c.id)}"><div><strong>${esc(
        c.model ?? "Security key",
      )}</strong>${badge}
<p class="hint">Enrolled ${esc(new Date(Number(c.created_at_ms)).toLocaleString())} · id ${esc(shortCredentialId(c))}</p>
<p class="credential-status">Status: ${statusBadge(c)}</p></div>${action}</li>`;
    })
    .join("");
  return `<ul class="plain" id="lost-credentials" aria-label="Your keys">${items}</ul>`;
}

function keysStep(s: LostState): string {
  const who = s.signedIn;
  if (!who) return "";
  const any = who.credentials.some((c) => canReport(who, c));
  const ask = any
    ? `<p>Which key is lost? Reporting it suspends it at once; you confirm with one more touch of ${esc(keyName(chosenKey(s)))}.</p>`
    : `<p id="lost-nothing">No other active key of yours is left to report lost. If the key you signed in with is the lost one, you could not have used it: call the help desk.</p>`;
  return `<h2 id="lost-title" tabindex="-1">Your keys</h2>${personLine(who, chosenKey(s))}${ask}
${renderCredentials(who, true)}
<div class="actions"><button data-action="lost-sign-out">Sign out</button></div>`;
}

function confirmStep(s: LostState): string {
  const c = s.lost;
  if (!c) return "";
  return `<h2 id="lost-title" tabindex="-1">Report this key lost?</h2>
<p id="lost-confirm-key"><strong>${esc(credentialName(c))}</strong></p>
<p>It stops working at once: nobody can sign in with it, even if it turns up again. A suspended key is not made active again: you enrol a replacement with a recovery ticket from the help desk.</p>
<form id="lost-confirm-form" novalidate>
<label for="lost-reason">What happened (optional)</label>
<input id="lost-reason" type="text" maxlength="500" autocomplete="off" aria-describedby="lost-reason-hint" />
<p class="hint" id="lost-reason-hint">For example: left on the train. The help desk sees it.</p>
<div class="actions"><button id="lost-confirm" class="primary" type="submit">Report lost: touch ${esc(
    keyName(chosenKey(s)),
  )} to confirm</button><button type="button" data-action="lost-go" data-step="keys">Cancel</button></div>
</form>`;
}

function doneStep(s: LostState): string {
  const c = s.lost;
  const who = s.signedIn;
  if (!c || !who) return "";
  // `command` in the advice is shown as code.
  const steps = AFTER_LOST.map((t) => `<li>${esc(t).replace(/`([^`]+)`/g, "<code>$1</code>")}</li>`).join("");
  return `<h2 id="lost-title" tabindex="-1">Key suspended</h2>
<p id="lost-done" role="status"><strong>${esc(credentialName(c))}</strong> is ${esc(
    c.status,
  )} now: it no longer works, for you or for anyone who finds it.</p>
<h3>What to do next</h3>
<ol id="lost-next">${steps}</ol>
${renderCredentials(who, false)}
<div class="actions"><button id="lost-to-recover" class="primary" data-action="lost-go" data-step="recover">Enrol a replacement</button><button data-action="lost-sign-out">Done</button></div>`;
}

function recoverStep(s: LostState): string {
  return `<h2 id="lost-title" tabindex="-1">Enrol a replacement key</h2>
<p>The help desk gave you a recovery ticket. With it and a touch of a key you still have, you enrol a new key in place of the lost one; the lost one is revoked once the new one is enrolled.</p>
<form id="lost-recover-form" novalidate>
<label for="recovery-ticket">Recovery ticket</label>
<input id="recovery-ticket" type="password" autocomplete="off" spellcheck="false" aria-describedby="recovery-ticket-hint" />
<p class="hint" id="recovery-ticket-hint">It starts with kwr_. It works once, and only for a short time.</p>
${keyChoice(s, "A key you still have", true)}
${pinField(s, "recovery-pin", "PIN of that key (not needed with no key left)")}
${problem(s)}
${
  s.busy
    ? `<p class="touch" id="lost-touch">${
        s.noKeyLeft ? "Redeeming the ticket…" : `Touch ${esc(keyName(chosenKey(s)))} to confirm it is you, while it blinks.`
      }</p>`
    : ""
}
<div class="actions"><button id="recover-continue" class="primary" type="submit"${s.busy ? " disabled" : ""}>Continue</button><button type="button" data-action="lost-go" data-step="sign-in">Back</button></div>
</form>`;
}

export function renderLost(s: LostState): string {
  const body = {
    "sign-in": signInStep,
    touch: (x: LostState) => touchStep(x, false),
    keys: keysStep,
    confirm: confirmStep,
    "confirm-touch": (x: LostState) => touchStep(x, true),
    done: doneStep,
    recover: recoverStep,
  }[s.step](s);
  return errorBox(s) + body;
}
