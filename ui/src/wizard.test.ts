import { describe, expect, it } from "vitest";
import type { ErrorCode } from "./bindings/ErrorCode";
import type { UiError } from "./bindings/UiError";
import type { WizardSession } from "./bindings/WizardSession";
import {
  asUiError,
  checkNewPin,
  clockTime,
  coverageText,
  covered,
  keySummary,
  minPinLength,
  needsPinChange,
  onKeyText,
  pinWarning,
  recovery,
  sameKeys,
  webLinkOpenedText,
  withRetriesLeft,
} from "./wizard";
import { initialState, proveKey, renderProgress, renderWizard } from "./wizard-view";
import { credential, softKey } from "./test-support";

const key = softKey("soft:abc", { options: { clientPin: false }, pin_set: false, min_pin_length: 6 });

const session: WizardSession = {
  person: { id: "p1", user_name: "ada@example.com", display_name: "Ada <Lovelace>" },
  active_authenticators: 0,
  required_authenticators: 2,
  session_expires_at_ms: 0,
  enrolled: [],
  rp_id: "example.com",
};

describe("PIN rules", () => {
  it("takes the key's own minimum, never below CTAP's 4", () => {
    expect(minPinLength(key)).toBe(6);
    expect(minPinLength({ ...key, min_pin_length: 2 })).toBe(4);
    expect(minPinLength({ ...key, min_pin_length: null })).toBe(4);
    // A new PIN in an enrolment meets the population's minimum, which the key is about to get.
    expect(minPinLength(key, { key_policy: { min_pin_length: 10, always_uv: false } })).toBe(10);
    expect(minPinLength(key, { key_policy: { min_pin_length: 5, always_uv: false } })).toBe(6);
    const html = renderWizard({
      ...initialState(),
      step: "pin",
      session: { ...session, key_policy: { min_pin_length: 10, always_uv: false } },
      chosen: key,
    });
    expect(html).toContain("Choose one of at least 10 characters");
  });
  it("wants the new PIN long enough and typed the same twice", () => {
    expect(checkNewPin("12345", "12345", 6)).toMatch(/at least 6 characters/);
    expect(checkNewPin("123456", "123465", 6)).toMatch(/not the same/);
    expect(checkNewPin("123456", "123456", 6)).toBeNull();
    // Characters, not bytes: four accented letters are four characters.
    expect(checkNewPin("éééé", "éééé", 4)).toBeNull();
    expect(checkNewPin("x".repeat(64), "x".repeat(64), 4)).toMatch(/too long/);
  });
  it("warns before the last attempt, not while there are plenty", () => {
    expect(pinWarning(8)).toBeNull();
    expect(pinWarning(3)).toMatch(/3 attempts left/);
    expect(pinWarning(2)).toMatch(/single attempt/);
    expect(pinWarning(1)).toMatch(/one PIN attempt is left.*help desk/);
    expect(pinWarning(0)).toMatch(/blocked.*Use another key/);
    expect(pinWarning(0)).not.toMatch(/one PIN attempt/);
    expect(pinWarning(null)).toBeNull();
  });
});

describe("coverage", () => {
  it("counts authenticators against the policy", () => {
    expect(coverageText(session)).toBe("You have 0 of 2 required authenticators.");
    expect(covered(session)).toBe(false);
    expect(covered({ ...session, active_authenticators: 2 })).toBe(true);
    expect(coverageText({ active_authenticators: 1, required_authenticators: 1 })).toBe(
      "You have 1 of 1 required authenticator.",
    );
  });
});

describe("recovery from errors", () => {
  const err = (code: ErrorCode): UiError => ({ code, message: "m", retries_left: null });
  it("sends each error to the step that fixes it", () => {
    expect(recovery(err("pin_invalid"), "touch")).toEqual({ step: "pin", action: "Try the PIN again" });
    expect(recovery(err("ticket_expired"), "ticket").step).toBe("ticket");
    expect(recovery(err("key_removed"), "touch").step).toBe("choose");
    expect(recovery(err("already_enrolled"), "touch")).toEqual({ step: "choose", action: "Use another key" });
    expect(recovery(err("pin_auth_blocked"), "touch").action).toMatch(/replugged/);
    expect(recovery(err("service_unreachable"), "touch").step).toBe("pin");
    expect(recovery(err("service_unreachable"), "ticket").step).toBe("ticket");
  });
  it("sends a ticket refused for someone with a key to confirming with that key", () => {
    expect(recovery(err("step_up_required"), "ticket")).toEqual({ step: "prove", action: "Confirm with a key I have" });
    expect(recovery(err("pin_invalid"), "prove")).toEqual({ step: "prove", action: "Try the PIN again" });
    expect(recovery(err("step_up_wrong_person"), "prove")).toEqual({ step: "prove", action: "Use another key" });
    expect(recovery(err("credential_unknown"), "prove").action).toBe("Use another key");
    expect(recovery(err("rp_mismatch"), "prove").step).toBe("ticket");
    expect(recovery(err("rp_mismatch"), "touch").step).toBe("ticket");
  });
  it("reads the shape Tauri rejects with, and anything else", () => {
    expect(asUiError({ code: "pin_invalid", message: "wrong", retries_left: 5 })).toEqual({
      code: "pin_invalid",
      message: "wrong",
      retries_left: 5,
    });
    expect(asUiError("boom")).toEqual({ code: "agent_error", message: "boom", retries_left: null });
  });
});

describe("keys", () => {
  it("sums up model, firmware and PIN state", () => {
    expect(keySummary(key)).toBe("firmware 3 · no PIN yet · id abc");
    expect(keySummary({ ...key, pin_set: true, pin_retries: 7, firmware_version: null })).toMatch(
      /firmware not reported · PIN set, 7 attempts left/,
    );
    expect(keySummary({ ...key, pin_set: true, pin_retries: 1 })).toMatch(/PIN set, 1 attempt left ·/);
    expect(keySummary({ ...key, pin_set: true, pin_retries: 0 })).toMatch(/PIN blocked ·/);
  });
  it("sees plugs, unplugs and PIN changes between polls", () => {
    expect(sameKeys([key], [key])).toBe(true);
    expect(sameKeys([key], [])).toBe(false);
    expect(sameKeys([key], [{ ...key, pin_set: true }])).toBe(false);
  });
  it("shows the retries a wrong PIN left on that key only", () => {
    const other = softKey("soft:other", { pin_retries: 8 });
    const wrong: UiError = { code: "pin_invalid", message: "wrong PIN", retries_left: 5 };
    const after = withRetriesLeft([{ ...key, pin_retries: 8 }, other], key.id, wrong);
    expect(after.map((k) => k.pin_retries)).toEqual([5, 8]);
    const keys = [key, other];
    expect(withRetriesLeft(keys, key.id, { ...wrong, retries_left: null })).toBe(keys);
  });
});

describe("wizard view", () => {
  it("marks the current step for assistive technology", () => {
    const html = renderProgress("pin");
    expect(html).toContain(`<li aria-current="step">3. PIN</li>`);
    expect(html).toContain(`<li class="done">✓ Ticket</li>`);
  });
  it("labels every field it renders", () => {
    const doc = new DOMParser().parseFromString("<div></div>", "text/html");
    for (const s of [
      { ...initialState() },
      { ...initialState(), step: "pin" as const, chosen: key, session },
      { ...initialState(), step: "pin" as const, chosen: { ...key, pin_set: true }, session },
    ]) {
      doc.body.innerHTML = renderWizard(s);
      const inputs = Array.from(doc.querySelectorAll("input"));
      expect(inputs.length).toBeGreaterThan(0);
      for (const i of inputs) expect(doc.querySelector(`label[for="${i.id}"]`), i.id).not.toBeNull();
    }
  });
  it("shows whose enrolment it is, escaped", () => {
    const html = renderWizard({ ...initialState(), step: "choose", session, keys: [key] });
    expect(html).toContain("Ada &lt;Lovelace&gt;");
    expect(html).toContain("You have 0 of 2 required authenticators.");
    expect(html).toContain("software key (test/demo)");
  });
  it("offers to add a key without a ticket, from the ticket step", () => {
    const html = renderWizard(initialState());
    expect(html).toMatch(/data-action="add-key"[^>]*>Add a key with it</);
  });
  it("asks which key you have and its PIN, and only keys with a PIN can confirm", () => {
    const enrolled = { ...key, id: "soft:old", pin_set: true, model: "Old key" };
    const s = { ...initialState(), step: "prove" as const, adding: true, keys: [key, enrolled] };
    const doc = new DOMParser().parseFromString(renderWizard(s), "text/html");
    expect(doc.querySelector("#step-title")?.textContent).toBe("Add a key");
    const radios = Array.from(doc.querySelectorAll<HTMLInputElement>("input[name=prove-key]"));
    expect(radios.map((r) => [r.value, r.disabled, r.checked])).toEqual([
      ["soft:abc", true, false],
      ["soft:old", false, true],
    ]);
    expect(doc.querySelector("#prove-key-list")?.textContent).toMatch(/It can be the new key/);
    for (const i of Array.from(doc.querySelectorAll("input"))) expect(doc.querySelector(`label[for="${i.id}"]`), i.id).not.toBeNull();
    expect(proveKey(s)?.id).toBe("soft:old");
    const busy = renderWizard({ ...s, busy: true, proveKeyId: "soft:old" });
    expect(busy).toMatch(/Touch Old key to confirm it is you/);
    const progress = renderProgress("prove", true);
    expect(progress).toContain(`<li aria-current="step">1. Your key</li>`);
  });
  it("does not offer the key you confirmed with as the new key", () => {
    const enrolled = { ...key, id: "soft:old", pin_set: true };
    const html = renderWizard({
      ...initialState(),
      step: "choose",
      session,
      adding: true,
      proveKeyId: "soft:old",
      keys: [enrolled, key],
    });
    expect(html).toContain("Plug in the new key");
    expect(html).toMatch(/You confirmed with this key/);
    expect(html).toMatch(/data-key="soft:old" aria-label="Use [^"]*" disabled/);
    expect(html).not.toMatch(/data-key="soft:abc" aria-label="Use [^"]*" disabled/);
  });
  it("refuses a key already enrolled in this session as the backup", () => {
    const html = renderWizard({ ...initialState(), step: "choose", session, keys: [key], usedKeyIds: [key.id] });
    expect(html).toMatch(/Already enrolled in this session/);
    expect(html).toMatch(/data-action="use"[^>]*disabled/);
  });
  it("explains why no key is found", () => {
    const html = renderWizard({
      ...initialState(),
      step: "choose",
      session,
      findings: [{ code: "no_udev_rule", problem: "no rule", fix: "install the rule" }],
    });
    expect(html).toContain(`data-code="no_udev_rule"`);
    expect(html).toContain("install the rule");
  });
  it("shows the retries the key reported after a wrong PIN, with a warning", () => {
    const html = renderWizard({
      ...initialState(),
      step: "pin",
      session,
      chosen: { ...key, pin_set: true, pin_retries: 8 },
      error: { code: "pin_invalid", message: "That PIN is wrong.", retries_left: 3 },
    });
    expect(html).toContain("3 attempts left before the key locks.");
    expect(html).toContain(`role="alert"`);
    expect(html).toMatch(/Careful: 3 attempts left/);
  });
  it("asks for a backup until the policy is met, then offers to finish", () => {
    const cred = credential({ model: "Model X", enrolled_on_device: "d", created_at_ms: 0 });
    const one = { ...session, active_authenticators: 1, enrolled: [cred] };
    const html = renderWizard({ ...initialState(), step: "enrolled", session: one, lastEnrolled: cred });
    expect(html).toContain("Enrol a backup key");
    expect(html).not.toContain(`id="finish"`);
    const two = { ...one, active_authenticators: 2 };
    const done = renderWizard({ ...initialState(), step: "enrolled", session: two, lastEnrolled: cred });
    expect(done).toContain(`id="finish"`);
    const summary = renderWizard({ ...initialState(), step: "summary", session: two });
    expect(summary).toMatch(/If you lose a key/);
    expect(done).not.toContain(`id="lost-revoked"`);
    // A session opened by a recovery ticket says it enrols the replacement, then that the lost
    // key is revoked.
    const choosing = renderWizard({ ...initialState(), step: "choose", session, keys: [key], replacing: true });
    expect(choosing).toMatch(/<p id="replacing">This enrols the replacement for your lost key/);
    expect(renderWizard({ ...initialState(), step: "choose", session, keys: [key] })).not.toContain(`id="replacing"`);
    const replaced = renderWizard({ ...initialState(), step: "enrolled", session: two, lastEnrolled: cred, replacing: true });
    expect(replaced).toMatch(/id="lost-revoked">It replaces your lost key, which is revoked now/);
  });
  it("believes the service when two keys of one kind fall short of a two-kinds policy", () => {
    const cred = credential({ model: "Model X", enrolled_on_device: "d", created_at_ms: 0 });
    const text = "Below your organisation's policy: you also need a laptop or phone (you have: roaming key).";
    const two = { ...session, active_authenticators: 2, enrolled: [cred], meets_policy: false, policy_text: text };
    expect(covered(two)).toBe(false);
    const html = renderWizard({ ...initialState(), step: "enrolled", session: two, lastEnrolled: cred });
    expect(html).not.toContain("You meet your organisation's policy");
    expect(html).toContain(`id="policy-text">Below your organisation&#39;s policy`);
    expect(covered({ ...two, meets_policy: true })).toBe(true);
  });
});

describe("adding this laptop or a phone in the browser", () => {
  const cred = credential({ model: "Model X", enrolled_on_device: "d", created_at_ms: 0 });
  const one = { ...session, active_authenticators: 1, enrolled: [cred] };
  const two = { ...one, active_authenticators: 2 };
  const doc = (html: string) => new DOMParser().parseFromString(html, "text/html");
  // 9:05 on the person's clock, whatever their time zone.
  const at0905 = new Date(2026, 11, 4, 9, 5, 30).getTime();

  it("is offered once a key is enrolled, below the policy and once it is met, and on the summary", () => {
    for (const s of [
      { ...initialState(), step: "enrolled" as const, session: one, lastEnrolled: cred },
      { ...initialState(), step: "enrolled" as const, session: two, lastEnrolled: cred },
      { ...initialState(), step: "summary" as const, session: two },
    ]) {
      const d = doc(renderWizard(s));
      const button = d.querySelector<HTMLButtonElement>("#open-web");
      expect(button?.textContent, s.step).toBe("Add this laptop or your phone");
      expect(button?.disabled).toBe(false);
      expect(d.querySelector("#web-offer")?.getAttribute("aria-labelledby")).toBe("web-offer-title");
      expect(d.querySelector("#web-link-status")?.textContent).toBe("");
    }
    // Below the policy the backup key stays the first thing to do.
    const below = doc(renderWizard({ ...initialState(), step: "enrolled", session: one, lastEnrolled: cred }));
    expect(below.querySelector("#backup")?.classList.contains("primary")).toBe(true);
    expect(below.querySelector("#open-web")?.classList.contains("primary")).toBe(false);
  });

  it("is not offered before a key is enrolled", () => {
    expect(renderWizard(initialState())).not.toContain(`id="open-web"`);
    expect(renderWizard({ ...initialState(), step: "choose", session, keys: [key] })).not.toContain(`id="open-web"`);
  });

  it("says the browser was opened and until when the link works, and never shows the link", () => {
    expect(clockTime(at0905)).toBe("09:05");
    expect(clockTime(new Date(2026, 11, 4, 23, 59).getTime())).toBe("23:59");
    expect(webLinkOpenedText(at0905)).toBe("We opened your browser: finish there. This link works once, until 09:05.");
    const d = doc(renderWizard({ ...initialState(), step: "enrolled", session: two, lastEnrolled: cred, webLinkUntil: at0905 }));
    const status = d.querySelector("#web-link-status");
    expect(status?.getAttribute("role")).toBe("status");
    expect(status?.textContent).toBe("We opened your browser: finish there. This link works once, until 09:05.");
    expect(d.querySelector("#open-web")?.textContent).toBe("Open the browser again");
    expect(d.body.innerHTML).not.toMatch(/#link=|\/me\/enrol/);
  });

  it("cannot be asked twice at once", () => {
    const d = doc(renderWizard({ ...initialState(), step: "summary", session: two, webLinkBusy: true }));
    expect(d.querySelector<HTMLButtonElement>("#open-web")?.disabled).toBe(true);
  });

  it("sends a session that is over back to a new ticket, and leaves the wizard where it is when no browser starts", () => {
    const over: ErrorCode[] = ["enrolment_expired", "enrolment_closed", "enrolment_unknown", "enrolment_wrong_device"];
    for (const code of over) {
      expect(recovery({ code, message: "", retries_left: null }, "summary"), code).toEqual({
        step: "ticket",
        action: "Enter a new ticket",
      });
    }
    expect(recovery({ code: "browser_not_opened", message: "", retries_left: null }, "summary")).toEqual({
      step: "summary",
      action: "OK",
    });
    expect(recovery({ code: "web_link_not_ours", message: "", retries_left: null }, "enrolled").step).toBe("ticket");
    // The error shows above the step, with the offer still there to try again.
    const html = renderWizard({
      ...initialState(),
      step: "enrolled",
      session: two,
      lastEnrolled: cred,
      error: { code: "browser_not_opened", message: "Keywarden could not open your web browser.", retries_left: null },
    });
    expect(html).toMatch(/id="error"[^>]*role="alert"><p>Keywarden could not open your web browser/);
    expect(html).toContain(`id="open-web"`);
  });
});

describe("a key that asks for a new PIN", () => {
  const forced = softKey("soft:forced", { pin_set: true, pin_retries: 5, force_pin_change: true, min_pin_length: 8 });

  it("asks for the current PIN and a new one, with the key's minimum and the attempts left", () => {
    expect(needsPinChange(forced)).toBe(true);
    expect(needsPinChange({ ...forced, force_pin_change: false })).toBe(false);
    expect(needsPinChange({ ...forced, pin_set: false })).toBe(false);
    const doc = new DOMParser().parseFromString(
      renderWizard({ ...initialState(), step: "pin", session, chosen: forced }),
      "text/html",
    );
    expect(doc.getElementById("step-title")?.textContent).toBe("This key asks for a new PIN");
    expect(doc.getElementById("pin-rules")?.textContent).toContain("at least 8 characters");
    expect(doc.getElementById("pin-retries")?.textContent).toBe("5 attempts left before the key locks.");
    for (const id of ["pin", "new-pin", "new-pin-again"]) expect(doc.getElementById(id)).not.toBeNull();
    // A key that does not ask keeps the one PIN field.
    const plain = new DOMParser().parseFromString(
      renderWizard({ ...initialState(), step: "pin", session, chosen: { ...forced, force_pin_change: false } }),
      "text/html",
    );
    expect(plain.getElementById("new-pin")).toBeNull();
  });

  it("the key's demand leads back to the PIN step", () => {
    const e: UiError = { code: "pin_change_required", message: "new PIN first", retries_left: null };
    expect(recovery(e, "touch")).toEqual({ step: "pin", action: "Change the PIN" });
  });
});

describe("what the key enforces", () => {
  it("says the minimum and the PIN at every use, and nothing when nothing was recorded", () => {
    expect(onKeyText({ on_key: { min_pin_length: 10, always_uv: true } })).toBe(
      "This key asks for a PIN of at least 10 characters, and for the PIN at every use.",
    );
    expect(onKeyText({ on_key: { min_pin_length: 4, always_uv: false } })).toBe(
      "This key asks for a PIN of at least 4 characters.",
    );
    expect(onKeyText({ on_key: { min_pin_length: null, always_uv: null } })).toBeNull();
    expect(onKeyText({})).toBeNull();
  });
});
