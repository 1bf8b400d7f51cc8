// Wiring: Tauri commands and events in, rendered HTML out. The logic lives in wizard.ts and the
// markup in view.ts / wizard-view.ts, both unit-tested; this file only connects them.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { AppStatus } from "./bindings/AppStatus";
import type { CheckinStatus } from "./bindings/CheckinStatus";
import type { KeyCredential } from "./bindings/KeyCredential";
import type { KeyInfo } from "./bindings/KeyInfo";
import type { KeyInventory } from "./bindings/KeyInventory";
import type { Posture } from "./bindings/Posture";
import type { CredentialView } from "./bindings/CredentialView";
import type { ReclaimedKey } from "./bindings/ReclaimedKey";
import type { SignInResponse } from "./bindings/SignInResponse";
import type { WizardSession } from "./bindings/WizardSession";
import { failedAt, initialLostState, withUpdated, type LostState, type LostStep } from "./lost";
import { renderLost } from "./lost-view";
import { initialReclaimState, renderReclaim, type ReclaimState } from "./reclaim-view";
import { esc, renderCheckin, renderError, renderInventory, renderPosture } from "./view";
import { asUiError, checkNewPin, minPinLength, needsPinChange, sameKeys, withRetriesLeft, type Step } from "./wizard";
import { initialState, renderProgress, renderWizard, type WizardState } from "./wizard-view";

const $ = (id: string) => document.getElementById(id);
let state: WizardState = initialState();
let lastRp: string | null = null;
let lastKeysHtml: string | null = null;
let lost: LostState = initialLostState();
let reclaim: ReclaimState = initialReclaimState();

function show(id: string, html: string) {
  const el = $(id);
  if (el) {
    el.innerHTML = html;
    el.setAttribute("aria-busy", "false");
  }
}

function render(focus = true) {
  const progress = $("progress");
  if (progress) progress.innerHTML = renderProgress(state.step, state.adding);
  const el = $("wizard");
  if (!el) return;
  el.setAttribute("aria-busy", "false");
  // A key plugged in while the PIN is typed on "Add a key": keep what was typed. Keyboard users
  // land on what needs them: the error's way forward, the first field, or the step's heading.
  const keep = state.step === "prove" ? ["prove-pin"] : [];
  redraw(el, renderWizard(state), keep, focus, ["#error-action", "#wizard input", "#step-title"]);
}

function go(step: Step, patch: Partial<WizardState> = {}) {
  state = { ...state, ...patch, step };
  render();
}

function fail(e: unknown) {
  state = { ...state, busy: false, error: asUiError(e) };
  if (state.step === "touch") state.step = "pin";
  render();
}

/** Values typed into the fields named by `ids` inside `el`, to put back after a re-render. */
function typed(el: HTMLElement, ids: string[]): [string, string][] {
  return ids
    .map((id) => [id, (el.querySelector(`[id="${id}"]`) as HTMLInputElement | null)?.value ?? ""] as [string, string])
    .filter(([, v]) => v !== "");
}

/** Put `html` in `el`, keeping the values typed into the fields `keep` names (a key plugged in
 * re-renders the view); with `focus`, move the keyboard to the first of `targets` (selectors). */
function redraw(el: HTMLElement, html: string, keep: string[], focus: boolean, targets: string[]) {
  const kept = typed(el, keep);
  el.innerHTML = html;
  for (const [id, v] of kept) {
    const input = el.querySelector(`[id="${id}"]`) as HTMLInputElement | null;
    if (input) input.value = v;
  }
  if (!focus) return;
  const target = targets.map((t) => document.querySelector(t) as HTMLElement | null).find((t) => t);
  target?.focus();
}

/** Render "Lost a key?"; `keep` names fields whose typed value survives (e.g. a key plugged in). */
function renderLostView(focus = true, keep: string[] = []) {
  const el = $("lost");
  if (!el) return;
  const field = "#lost input[type=password], #lost input[type=text]";
  redraw(el, renderLost(lost), keep, focus, ["#lost-error-action", field, "#lost-title"]);
}

function lostGo(step: LostStep, patch: Partial<LostState> = {}) {
  lost = { ...lost, ...patch, step };
  renderLostView();
}

function lostFail(e: unknown, keep: string[] = []) {
  lost = { ...lost, busy: false, error: asUiError(e), step: failedAt(lost.step) };
  renderLostView(true, keep);
}

function renderReclaimView(focus = false) {
  show("reclaim", renderReclaim(reclaim));
  if (focus) (($("reclaim-error") ?? $("reclaim-summary")) as HTMLElement | null)?.focus();
}

async function refreshStatus() {
  try {
    const s = await invoke<AppStatus>("app_status");
    const where = s.provisioned ? `Reporting to ${s.server_url}` : "This laptop is not provisioned yet";
    const locked = s.server_locked ? " (set by your organisation)" : "";
    const soft = s.soft_keys_enabled ? " · software keys (test/demo) enabled" : "";
    const st = $("status");
    if (st) st.textContent = `${where}${locked} · ${s.checkin.outbox_pending} report(s) waiting · v${s.version}${soft}`;
    show("checkin", renderCheckin(s.checkin));
    if (reclaim.deviceId !== (s.device_id ?? null)) reclaim = { ...reclaim, deviceId: s.device_id ?? null };
    if (s.ticket_from_link && !state.ticketFromLink) {
      state.ticketFromLink = true;
      if (state.step === "ticket") render(false);
    }
  } catch (e) {
    show("status", renderError(e));
  }
}

async function refreshKeys() {
  try {
    const inv = await invoke<KeyInventory>("inventory");
    // Unchanged keys are not rendered again: that would clear a PIN being typed there.
    const keysHtml = renderInventory(inv);
    if (keysHtml !== lastKeysHtml) show("keys", keysHtml);
    lastKeysHtml = keysHtml;
    const keyForm = (state.step === "choose" || state.step === "prove") && !state.busy;
    if (keyForm && (!sameKeys(inv.keys, state.keys) || state.findings.length !== inv.findings.length)) {
      const focused = document.activeElement?.id;
      state = { ...state, keys: inv.keys, findings: inv.findings };
      render(false);
      if (focused) $(focused)?.focus();
    } else {
      state = { ...state, keys: inv.keys, findings: inv.findings };
    }
    const lostForm = lost.step === "sign-in" || lost.step === "recover";
    const lostKeysChanged = !sameKeys(inv.keys, lost.keys);
    lost = { ...lost, keys: inv.keys };
    // Keys plugged in or out while the person fills in a form: show them, keep what was typed.
    if (lostForm && !lost.busy && lostKeysChanged) {
      const focused = document.activeElement?.id;
      renderLostView(false, ["lost-pin", "recovery-ticket", "recovery-pin"]);
      if (focused) $(focused)?.focus();
    }
  } catch (e) {
    show("keys", renderError(e));
    lastKeysHtml = null;
  }
}

async function begin(ticket: string) {
  state = { ...state, busy: true, error: null };
  render(false);
  try {
    const session = await invoke<WizardSession>("wizard_begin", { ticket: ticket || null });
    state.ticketFromLink = false;
    lastRp = session.rp_id;
    go("choose", { session, busy: false, usedKeyIds: [], lastEnrolled: null });
    await refreshKeys();
  } catch (e) {
    fail(e);
  }
}

async function enrol(pin: string | null, newPin: string | null) {
  const key = state.chosen;
  if (!key) return;
  go("touch", { busy: true, error: null, inputProblem: null });
  try {
    const before = state.session?.enrolled.length ?? 0;
    const session = await invoke<WizardSession>("wizard_enrol", { keyId: key.id, pin, newPin });
    const last = session.enrolled[session.enrolled.length - 1] ?? null;
    if (session.enrolled.length > before) lastRp = session.rp_id;
    go("enrolled", { session, busy: false, lastEnrolled: last, usedKeyIds: [...state.usedKeyIds, key.id] });
    void refreshKeys();
    void refreshStatus();
  } catch (e) {
    const err = asUiError(e);
    // The step may have changed the key before it failed (a new PIN is set before the touch
    // that timed out): ask the PIN step of the key as it is now, not as it was chosen.
    try {
      const inv = await invoke<KeyInventory>("inventory");
      const now = inv.keys.find((k) => k.id === key.id);
      if (now && state.chosen?.id === key.id) state.chosen = now;
    } catch {
      // Keep the key as it was chosen; the error below says what happened.
    }
    // After a wrong PIN the key's retries changed: show what the key now says.
    if (err.retries_left != null && state.chosen) state.chosen = { ...state.chosen, pin_retries: err.retries_left };
    fail(err);
  }
}

document.addEventListener("submit", (ev) => {
  const form = ev.target as HTMLFormElement;
  ev.preventDefault();
  if (form.id === "ticket-form") {
    void begin((($("ticket") as HTMLInputElement).value ?? "").trim());
  } else if (form.id === "pin-form" && state.chosen) {
    if (needsPinChange(state.chosen)) {
      const pin = ($("pin") as HTMLInputElement).value;
      const a = ($("new-pin") as HTMLInputElement).value;
      const b = ($("new-pin-again") as HTMLInputElement).value;
      const problem = !pin ? "Type the key's current PIN." : checkNewPin(a, b, minPinLength(state.chosen, state.session));
      if (problem) {
        state.inputProblem = problem;
        render();
        return;
      }
      void enrol(pin, a);
    } else if (state.chosen.pin_set) {
      const pin = ($("pin") as HTMLInputElement).value;
      if (!pin) {
        state.inputProblem = "Type the key's PIN.";
        render();
        return;
      }
      void enrol(pin, null);
    } else {
      const a = ($("new-pin") as HTMLInputElement).value;
      const b = ($("new-pin-again") as HTMLInputElement).value;
      const problem = checkNewPin(a, b, minPinLength(state.chosen, state.session));
      if (problem) {
        state.inputProblem = problem;
        render();
        return;
      }
      void enrol(null, a);
    }
  } else if (form.id === "prove-form") {
    const keyId = (document.querySelector("#wizard input[name=prove-key]:checked") as HTMLInputElement | null)?.value ?? null;
    const pin = ($("prove-pin") as HTMLInputElement).value;
    const problem = !keyId ? "Choose the key you already have." : !pin ? "Type the PIN of that key." : null;
    if (problem || !keyId) {
      state = { ...state, inputProblem: problem, error: null };
      return render();
    }
    void addKeyBegin(keyId, pin);
  } else if (form.classList.contains("creds")) {
    void listCredentials(form);
  } else if (form.classList.contains("pin-change")) {
    void changePin(form);
  } else if (form.id === "lost-sign-in-form") {
    const keyId = chosenRadio();
    const pin = ($("lost-pin") as HTMLInputElement).value;
    const problem = !keyId ? "Choose the key you still have." : !pin ? "Type the key's PIN." : null;
    if (problem || !keyId) {
      lost = { ...lost, inputProblem: problem, error: null };
      return renderLostView(true, ["lost-pin"]);
    }
    void lostSignIn(keyId, pin);
  } else if (form.id === "lost-confirm-form") {
    void lostConfirm(($("lost-reason") as HTMLInputElement).value.trim());
  } else if (form.id === "lost-recover-form") {
    const ticket = ($("recovery-ticket") as HTMLInputElement).value.trim();
    const keyId = chosenRadio();
    const pin = ($("recovery-pin") as HTMLInputElement).value;
    const problem = !ticket
      ? "Paste the recovery ticket the help desk gave you."
      : keyId === null
        ? "Choose a key you still have (or, only if the help desk said so, that you have no key left)."
        : keyId !== "" && !pin
          ? "Type the PIN of the key you still have."
          : null;
    if (problem) {
      lost = { ...lost, inputProblem: problem, error: null };
      return renderLostView(true, ["recovery-ticket"]);
    }
    void recoverBegin(ticket, keyId || null, keyId ? pin : null);
  } else if (form.id === "reclaim-form") {
    void runReclaim(($("reclaim-pin") as HTMLInputElement).value);
  }
});

/** The key chosen in "Lost a key?": its id, "" for "I have no key left", null for none. */
function chosenRadio(): string | null {
  const r = document.querySelector("#lost input[name=lost-key]:checked") as HTMLInputElement | null;
  return r ? r.value : null;
}

// Choosing a key is remembered, so a re-render (a key plugged in) keeps the choice.
document.addEventListener("change", (ev) => {
  const el = ev.target as HTMLInputElement;
  if (el.name !== "lost-key") return;
  lost = el.value ? { ...lost, keyId: el.value, noKeyLeft: false } : { ...lost, noKeyLeft: true };
});

async function lostSignIn(keyId: string, pin: string) {
  lostGo("touch", { keyId, busy: true, error: null, inputProblem: null });
  try {
    const who = await invoke<SignInResponse>("lost_sign_in", { keyId, pin });
    lostGo("keys", { signedIn: who, busy: false });
    // A PIN that worked resets the key's attempts: keep the list current for later.
    void refreshKeys();
  } catch (e) {
    const err = asUiError(e);
    // After a wrong PIN the key's retries changed: show what the key now says.
    lost = { ...lost, keys: withRetriesLeft(lost.keys, keyId, err) };
    lostFail(err);
  }
}

async function lostConfirm(reason: string) {
  const c = lost.lost;
  if (!c) return;
  lostGo("confirm-touch", { busy: true, error: null });
  try {
    const updated = await invoke<CredentialView>("lost_report", { credentialId: c.id, reason: reason || null });
    const who = lost.signedIn && { ...lost.signedIn, credentials: withUpdated(lost.signedIn.credentials, updated) };
    lostGo("done", { lost: updated, signedIn: who, busy: false });
  } catch (e) {
    lostFail(e);
  }
}

async function recoverBegin(ticket: string, keyId: string | null, pin: string | null) {
  lost = { ...lost, busy: true, error: null, inputProblem: null, keyId: keyId ?? lost.keyId, noKeyLeft: keyId === null };
  renderLostView(false, ["recovery-ticket"]);
  try {
    const session = await invoke<WizardSession>("recovery_begin", { ticket, keyId, pin });
    // The replacement is enrolled in the wizard, in the session the ticket opened.
    lost = { ...initialLostState(), keys: lost.keys };
    renderLostView(false);
    lastRp = session.rp_id;
    state = { ...initialState(), keys: state.keys, findings: state.findings, session, replacing: true, step: "choose" };
    selectTab("enrol");
    render();
    await refreshKeys();
  } catch (e) {
    // The ticket is kept unless the service refused the ticket itself.
    const err = asUiError(e);
    lostFail(err, err.code.startsWith("recovery_") ? [] : ["recovery-ticket"]);
  }
}

/** "Add a key": confirm with a key the person has; the session it opens is the wizard's. */
async function addKeyBegin(keyId: string, pin: string) {
  state = { ...state, busy: true, error: null, inputProblem: null, proveKeyId: keyId };
  render(false);
  try {
    const session = await invoke<WizardSession>("add_key_begin", { keyId, pin });
    lastRp = session.rp_id;
    state = {
      ...initialState(),
      keys: state.keys,
      findings: state.findings,
      session,
      adding: true,
      proveKeyId: keyId,
      step: "choose",
    };
    render();
    await refreshKeys();
  } catch (e) {
    const err = asUiError(e);
    // After a wrong PIN the key's retries changed: show what the key now says.
    state = { ...state, keys: withRetriesLeft(state.keys, keyId, err) };
    fail(err);
  }
}

/**
 * "Add this laptop or your phone": the app has the service's one-time link opened in the default
 * browser; the web view gets only when the link stops working, never the link.
 */
async function openWebEnrolment() {
  state = { ...state, webLinkBusy: true, error: null };
  render(false);
  try {
    const until = await invoke<number>("open_web_enrolment");
    state = { ...state, webLinkBusy: false, webLinkUntil: until };
    render(false);
    $("web-link-status")?.focus();
  } catch (e) {
    state = { ...state, webLinkBusy: false };
    fail(e);
  }
}

/** Open "Add a key" in the enrolment tab. */
function startAddKey() {
  invoke("wizard_cancel").catch(() => undefined);
  state = { ...initialState(), keys: state.keys, findings: state.findings, ticketFromLink: state.ticketFromLink, adding: true, step: "prove" };
  selectTab("enrol");
  render();
  void refreshKeys();
}

async function runReclaim(pin: string) {
  reclaim = { ...reclaim, busy: true, error: null, result: null, keys: state.keys };
  renderReclaimView();
  try {
    const result = await invoke<ReclaimedKey[]>("reclaim_run", { pin: pin || null });
    reclaim = { ...reclaim, busy: false, result };
  } catch (e) {
    reclaim = { ...reclaim, busy: false, error: asUiError(e) };
  }
  renderReclaimView(true);
  void refreshKeys();
  void refreshStatus();
}

/** "Change PIN" on a key in the key list. */
async function changePin(form: HTMLFormElement) {
  const out = form.querySelector(".pc-out");
  const field = (name: string) => form.querySelector(`input[name=${name}]`) as HTMLInputElement;
  const [pin, a, b] = [field("pin"), field("new"), field("again")];
  const keyId = form.dataset.pinKey ?? "";
  if (!out) return;
  const problem = !pin.value ? "Type the key's current PIN." : checkNewPin(a.value, b.value, Number(form.dataset.min ?? 4));
  const clear = () => [pin, a, b].forEach((i) => (i.value = ""));
  if (problem) {
    out.innerHTML = `<p class="warning" role="alert">${esc(problem)}</p>`;
    return;
  }
  try {
    const key = await invoke<KeyInfo>("key_change_pin", { keyId, pin: pin.value, newPin: a.value });
    clear();
    // The key list is drawn again with the key as it is now; say it where the form now is.
    await refreshKeys();
    const now = document.querySelector(`form.pin-change[data-pin-key="${CSS.escape(keyId)}"] .pc-out`) ?? out;
    now.innerHTML = `<p class="pc-done" role="status">PIN changed on ${esc(key.model ?? key.label)}.</p>`;
    now.scrollIntoView({ block: "nearest" });
  } catch (e) {
    clear();
    out.innerHTML = `<p class="warning" role="alert">${esc(asUiError(e).message)}</p>`;
  }
}

async function listCredentials(form: HTMLFormElement) {
  const out = form.querySelector(".creds-out");
  const input = form.querySelector("input") as HTMLInputElement;
  const keyId = form.dataset.key ?? "";
  if (!out) return;
  const rp = lastRp ?? "";
  if (!rp) {
    out.innerHTML = `<p class="hint">Your organisation's passkeys can be listed once a key was enrolled in this window.</p>`;
    return;
  }
  try {
    const creds = await invoke<KeyCredential[]>("key_credentials", { keyId, rpId: rp, pin: input.value });
    input.value = "";
    out.innerHTML = creds.length
      ? `<ul>${creds.map((c) => `<li>${esc(c.user_name)} · ${esc(c.rp_id)}</li>`).join("")}</ul>`
      : `<p>No passkeys for ${esc(rp)} on this key.</p>`;
  } catch (e) {
    input.value = "";
    out.innerHTML = renderError(e);
  }
}

document.addEventListener("click", (ev) => {
  const el = (ev.target as HTMLElement).closest("[data-action]") as HTMLElement | null;
  if (!el) return;
  const action = el.dataset.action;
  const keyId = el.dataset.key;
  switch (action) {
    case "use": {
      const k = state.keys.find((x) => x.id === keyId);
      if (k) go("pin", { chosen: k, error: null, inputProblem: null });
      break;
    }
    case "wink":
      if (keyId) invoke("wizard_wink", { keyId }).catch(fail);
      break;
    case "touch-select":
      go("choose", { busy: true, error: null });
      invoke<string>("wizard_select_by_touch", { keyIds: state.keys.map((k) => k.id) }).then(
        (id) => {
          const k = state.keys.find((x) => x.id === id);
          go("pin", { chosen: k ?? null, busy: false });
        },
        fail,
      );
      break;
    case "recover": {
      const step = el.dataset.step as Step;
      const chosen = step === "choose" || step === "ticket" ? null : state.chosen;
      go(step, {
        error: null,
        chosen,
        ...(step === "ticket" ? { session: null, adding: false, proveKeyId: null } : {}),
        ...(step === "prove" ? { adding: true, inputProblem: null } : {}),
      });
      if (step === "choose" || step === "prove") void refreshKeys();
      break;
    }
    case "add-key":
      startAddKey();
      break;
    case "backup":
      go("choose", { chosen: null, error: null });
      void refreshKeys();
      break;
    case "finish":
      go("summary");
      break;
    case "open-web":
      void openWebEnrolment();
      break;
    case "cancel":
      // Cancel this key: nothing was made on it yet; the session (and the ticket) stay usable.
      go("choose", { chosen: null, error: null, inputProblem: null });
      void refreshKeys();
      break;
    case "restart":
      invoke("wizard_cancel").catch(() => undefined);
      state = { ...initialState(), ticketFromLink: state.ticketFromLink };
      render();
      break;
    case "lost-go": {
      const step = el.dataset.step as LostStep;
      lostGo(step, { error: null, inputProblem: null, busy: false });
      if (step === "sign-in" || step === "recover") void refreshKeys();
      break;
    }
    case "lost-pick": {
      const c = lost.signedIn?.credentials.find((x) => x.id === el.dataset.credential) ?? null;
      if (c) lostGo("confirm", { lost: c, error: null });
      break;
    }
    case "lost-sign-out":
      invoke("lost_sign_out").catch(() => undefined);
      lost = { ...initialLostState(), keys: lost.keys, keyId: lost.keyId };
      renderLostView();
      break;
    case "checkin":
      el.setAttribute("disabled", "");
      invoke<CheckinStatus>("check_in_now").then(
        (c) => show("checkin", renderCheckin(c)),
        (e) => show("checkin", renderError(e)),
      );
      break;
  }
});

// Tabs: click, or arrow keys between them (the ARIA tabs pattern).
const tabs = ["enrol", "keys", "posture", "lost", "reclaim"];
function selectTab(name: string) {
  for (const t of tabs) {
    const tab = $(`tab-${t}`);
    const panel = $(`panel-${t}`);
    const on = t === name;
    tab?.setAttribute("aria-selected", String(on));
    tab?.setAttribute("tabindex", on ? "0" : "-1");
    if (panel) panel.hidden = !on;
  }
  $(`tab-${name}`)?.focus();
  if (name === "keys") void refreshKeys();
  if (name === "posture") void loadPosture();
  if (name === "lost" || name === "reclaim") void refreshKeys();
}
for (const t of tabs) {
  const tab = $(`tab-${t}`);
  tab?.addEventListener("click", () => selectTab(t));
  tab?.addEventListener("keydown", (ev) => {
    const i = tabs.indexOf(t);
    if (ev.key === "ArrowRight") selectTab(tabs[(i + 1) % tabs.length]);
    if (ev.key === "ArrowLeft") selectTab(tabs[(i + tabs.length - 1) % tabs.length]);
  });
}

async function loadPosture() {
  invoke<Posture>("posture").then(
    (p) => show("posture", renderPosture(p)),
    (e) => show("posture", renderError(e)),
  );
  void refreshStatus();
}

void listen<string>("wizard-touch", () => {
  for (const id of ["touch-now", "lost-touch", "reclaim-touch"]) $(id)?.setAttribute("data-waiting", "true");
});
void listen<CheckinStatus>("checkin", (ev) => {
  show("checkin", renderCheckin(ev.payload));
  void refreshStatus();
});
void listen("keys-changed", () => void refreshKeys());

render();
renderLostView(false);
renderReclaimView();
requestAnimationFrame(() => requestAnimationFrame(() => void invoke("painted").catch(() => undefined)));
void refreshStatus();
void refreshKeys();
void loadPosture();
// Keys are detected live as they are plugged in and out.
setInterval(() => {
  const lostForm = !($("panel-lost")?.hidden ?? true) && (lost.step === "sign-in" || lost.step === "recover") && !lost.busy;
  if (((state.step === "choose" || state.step === "prove") && !state.busy) || lostForm) void refreshKeys();
}, 1000);
