// Wiring: Tauri commands and events in, rendered HTML out. The logic lives in wizard.ts and the
// markup in view.ts / wizard-view.ts, both unit-tested; this file only connects them.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { AppStatus } from "./bindings/AppStatus";
import type { CheckinStatus } from "./bindings/CheckinStatus";
import type { KeyCredential } from "./bindings/KeyCredential";
import type { KeyInventory } from "./bindings/KeyInventory";
import type { Posture } from "./bindings/Posture";
import type { WizardSession } from "./bindings/WizardSession";
import { esc, renderCheckin, renderError, renderInventory, renderPosture } from "./view";
import { asUiError, checkNewPin, minPinLength, sameKeys, type Step } from "./wizard";
import { initialState, renderProgress, renderWizard, type WizardState } from "./wizard-view";

const $ = (id: string) => document.getElementById(id);
let state: WizardState = initialState();
let lastRp: string | null = null;

function show(id: string, html: string) {
  const el = $(id);
  if (el) {
    el.innerHTML = html;
    el.setAttribute("aria-busy", "false");
  }
}

function render(focus = true) {
  const progress = $("progress");
  if (progress) progress.innerHTML = renderProgress(state.step);
  show("wizard", renderWizard(state));
  if (!focus) return;
  // Keyboard users land on what needs them: the error's way forward, the first field, or the
  // step's heading.
  const target =
    ($("error-action") as HTMLElement | null) ??
    (document.querySelector("#wizard input") as HTMLElement | null) ??
    ($("step-title") as HTMLElement | null);
  target?.focus();
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

async function refreshStatus() {
  try {
    const s = await invoke<AppStatus>("app_status");
    const where = s.provisioned ? `Reporting to ${s.server_url}` : "This laptop is not provisioned yet";
    const locked = s.server_locked ? " (set by your organisation)" : "";
    const soft = s.soft_keys_enabled ? " · software keys (test/demo) enabled" : "";
    const st = $("status");
    if (st) st.textContent = `${where}${locked} · ${s.checkin.outbox_pending} report(s) waiting · v${s.version}${soft}`;
    show("checkin", renderCheckin(s.checkin));
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
    show("keys", renderInventory(inv));
    if (state.step === "choose" && !state.busy && (!sameKeys(inv.keys, state.keys) || state.findings.length !== inv.findings.length)) {
      const focused = document.activeElement?.id;
      state = { ...state, keys: inv.keys, findings: inv.findings };
      render(false);
      if (focused) $(focused)?.focus();
    } else {
      state = { ...state, keys: inv.keys, findings: inv.findings };
    }
  } catch (e) {
    show("keys", renderError(e));
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
    if (state.chosen.pin_set) {
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
      const problem = checkNewPin(a, b, minPinLength(state.chosen));
      if (problem) {
        state.inputProblem = problem;
        render();
        return;
      }
      void enrol(null, a);
    }
  } else if (form.classList.contains("creds")) {
    void listCredentials(form);
  }
});

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
      go(step, { error: null, chosen, ...(step === "ticket" ? { session: null } : {}) });
      if (step === "choose") void refreshKeys();
      break;
    }
    case "backup":
      go("choose", { chosen: null, error: null });
      void refreshKeys();
      break;
    case "finish":
      go("summary");
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
const tabs = ["enrol", "keys", "posture"];
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
  const t = $("touch-now");
  if (t) t.setAttribute("data-waiting", "true");
});
void listen<CheckinStatus>("checkin", (ev) => {
  show("checkin", renderCheckin(ev.payload));
  void refreshStatus();
});
void listen("keys-changed", () => void refreshKeys());

render();
requestAnimationFrame(() => requestAnimationFrame(() => void invoke("painted").catch(() => undefined)));
void refreshStatus();
void refreshKeys();
void loadPosture();
// Keys are detected live as they are plugged in and out.
setInterval(() => {
  if (state.step === "choose" && !state.busy) void refreshKeys();
}, 1000);
