import { describe, expect, it } from "vitest";
import type { ErrorCode } from "./bindings/ErrorCode";
import type { UiError } from "./bindings/UiError";
import type { CredentialView } from "./bindings/CredentialView";
import type { SignInResponse } from "./bindings/SignInResponse";
import { canReport, chosenKey, failedAt, initialLostState, lostRecovery, statusText, withUpdated, type LostState } from "./lost";
import { renderLost } from "./lost-view";
import { credential, dom, softKey } from "./test-support";

const key = softKey;

const cred = (id: string, status: string, model = "Keywarden software key (test/demo)"): CredentialView =>
  credential({ id, status, model });

const who: SignInResponse = {
  person: { id: "p1", user_name: "ada@example.com", display_name: "Ada <Lovelace>" },
  signed_in_with: "BBBBBBBBcred",
  credentials: [cred("AAAAAAAAcred", "active"), cred("BBBBBBBBcred", "active"), cred("CCCCCCCCcred", "suspended")],
};

const state = (patch: Partial<LostState>): LostState => ({ ...initialLostState(), ...patch });

describe("signing in with the key you still have", () => {
  it("preselects the only key, or the one chosen before, and asks for its PIN", () => {
    expect(chosenKey({ keys: [key("soft:a")], keyId: null })?.id).toBe("soft:a");
    expect(chosenKey({ keys: [key("soft:a"), key("soft:b")], keyId: null })).toBeNull();
    expect(chosenKey({ keys: [key("soft:a"), key("soft:b")], keyId: "soft:b" })?.id).toBe("soft:b");
    const d = dom(renderLost(state({ keys: [key("soft:a"), key("soft:b")], keyId: "soft:b" })));
    const radios = Array.from(d.querySelectorAll("input[name=lost-key]")) as HTMLInputElement[];
    expect(radios.map((r) => [r.value, r.checked])).toEqual([
      ["soft:a", false],
      ["soft:b", true],
    ]);
    // Every field has its label.
    for (const i of Array.from(d.querySelectorAll("input"))) expect(d.querySelector(`label[for="${i.id}"]`)).not.toBeNull();
    expect(d.getElementById("lost-sign-in")?.textContent).toBe("Sign in");
  });
  it("does not offer a key without a PIN, or with its PIN blocked, and says why", () => {
    const keys = [key("soft:a", { pin_set: false }), key("soft:b"), key("soft:c", { pin_retries: 0 })];
    // The one usable key is preselected.
    expect(chosenKey({ keys, keyId: null })?.id).toBe("soft:b");
    const d = dom(renderLost(state({ keys })));
    const radios = Array.from(d.querySelectorAll("input[name=lost-key]")) as HTMLInputElement[];
    expect(radios.map((r) => [r.disabled, r.checked])).toEqual([
      [true, false],
      [false, true],
      [true, false],
    ]);
    expect(d.querySelector('[data-key-id="soft:a"]')?.textContent).toMatch(/never enrolled/);
    expect(d.querySelector('[data-key-id="soft:c"]')?.textContent).toMatch(/PIN is blocked/);
  });
  it("says when no key is plugged in", () => {
    const d = dom(renderLost(state({ keys: [] })));
    expect(d.getElementById("lost-no-key")?.textContent).toMatch(/Plug in a key you still have/);
  });
  it("warns when the key's PIN attempts run low", () => {
    const d = dom(renderLost(state({ keys: [key("soft:a", { pin_retries: 2 })] })));
    expect(d.getElementById("lost-pin-warning")?.textContent).toMatch(/2 attempts left/);
  });
});

describe("your keys after signing in", () => {
  const signedIn = state({ step: "keys", keys: [key("soft:b")], keyId: "soft:b", signedIn: who });

  it("shows who you are, each key's status, and marks the one you signed in with", () => {
    const d = dom(renderLost(signedIn));
    expect(d.getElementById("lost-person")?.textContent).toContain("Ada <Lovelace> <ada@example.com>");
    const items = Array.from(d.querySelectorAll("#lost-credentials li"));
    expect(items).toHaveLength(3);
    const status = items.map((li) => li.querySelector("[data-status]")?.textContent);
    expect(status).toEqual(["active", "active", "suspended: reported lost, it no longer works"]);
    expect(items[1].textContent).toContain("you signed in with this key");
    expect(items[0].textContent).not.toContain("you signed in with this key");
  });
  it("offers only the other active keys to report lost", () => {
    const d = dom(renderLost(signedIn));
    const buttons = Array.from(d.querySelectorAll("[data-action=lost-pick]")) as HTMLElement[];
    expect(buttons.map((b) => b.dataset.credential)).toEqual(["AAAAAAAAcred"]);
    expect(canReport(who, who.credentials[1])).toBe(false);
    expect(canReport(who, who.credentials[2])).toBe(false);
  });
  it("says so when there is no other key to report", () => {
    const alone = { ...who, credentials: [cred("BBBBBBBBcred", "active")] };
    const d = dom(renderLost({ ...signedIn, signedIn: alone }));
    expect(d.getElementById("lost-nothing")?.textContent).toMatch(/call the help desk/);
    expect(d.querySelector("[data-action=lost-pick]")).toBeNull();
  });
});

describe("confirming and after", () => {
  it("says what reporting does, and that the key is touched once more", () => {
    const d = dom(renderLost(state({ step: "confirm", keys: [key("soft:b")], keyId: "soft:b", signedIn: who, lost: who.credentials[0] })));
    expect(d.getElementById("lost-confirm-key")?.textContent).toContain("id AAAAAAAA");
    expect(d.getElementById("lost-confirm")?.textContent).toMatch(/touch Keywarden software key \(test\/demo\) to confirm/);
    expect(d.querySelector("label[for=lost-reason]")?.textContent).toMatch(/optional/);
  });
  it("shows the key suspended and what to do next", () => {
    const suspended = { ...who.credentials[0], status: "suspended" };
    const after = { ...who, credentials: withUpdated(who.credentials, suspended) };
    const d = dom(renderLost(state({ step: "done", keyId: "soft:b", signedIn: after, lost: suspended })));
    expect(d.getElementById("lost-done")?.textContent).toMatch(/is suspended now: it no longer works/);
    const next = d.getElementById("lost-next")?.textContent ?? "";
    expect(next).toMatch(/help desk for a recovery ticket/);
    expect(d.querySelector("#lost-next code")?.textContent).toBe("keywarden recover");
    expect(d.querySelector('[data-credential-id="AAAAAAAAcred"] [data-status]')?.textContent).toMatch(/^suspended/);
    expect(d.querySelector("[data-action=lost-pick]")).toBeNull();
    expect(d.getElementById("lost-to-recover")).not.toBeNull();
  });
  it("reads the statuses plainly", () => {
    expect(statusText("revoked")).toMatch(/no longer works/);
    expect(statusText("active")).toBe("active");
  });
});

describe("errors", () => {
  const err = (code: ErrorCode, message = "x"): UiError => ({ code, message, retries_left: null });
  it("shows a failed touch where it was started", () => {
    expect(failedAt("touch")).toBe("sign-in");
    expect(failedAt("confirm-touch")).toBe("confirm");
    expect(failedAt("recover")).toBe("recover");
  });
  it("leads each refusal to the step that fixes it", () => {
    expect(lostRecovery(err("pin_invalid"), "sign-in")).toEqual({ step: "sign-in", action: "Try the PIN again" });
    expect(lostRecovery(err("pin_invalid"), "recover").step).toBe("recover");
    expect(lostRecovery(err("step_up_same_key"), "confirm")).toEqual({ step: "keys", action: "Choose another key" });
    expect(lostRecovery(err("credential_not_active"), "sign-in")).toEqual({ step: "sign-in", action: "Use another key" });
    expect(lostRecovery(err("credential_not_active"), "confirm").step).toBe("keys");
    expect(lostRecovery(err("touch_timeout"), "confirm")).toEqual({ step: "confirm", action: "Try again" });
    expect(lostRecovery(err("needs_input"), "confirm").step).toBe("sign-in");
  });
  it("shows the sentence and the way forward", () => {
    const s = state({ step: "sign-in", keys: [key("soft:a")], error: err("credential_not_active", "The key you used is suspended or revoked.") });
    const d = dom(renderLost(s));
    expect(d.getElementById("lost-error")?.getAttribute("role")).toBe("alert");
    expect(d.getElementById("lost-error")?.textContent).toContain("The key you used is suspended or revoked.");
    expect(d.getElementById("lost-error-action")?.textContent).toBe("Use another key");
  });
});

describe("recovery form", () => {
  it("asks for the ticket and a key you still have, or none when the help desk arranged it", () => {
    const d = dom(renderLost(state({ step: "recover", keys: [key("soft:b")], keyId: "soft:b" })));
    expect(d.querySelector("label[for=recovery-ticket]")?.textContent).toBe("Recovery ticket");
    expect((d.getElementById("recovery-ticket") as HTMLInputElement).type).toBe("password");
    const radios = Array.from(d.querySelectorAll("input[name=lost-key]")) as HTMLInputElement[];
    expect(radios.map((r) => r.value)).toEqual(["soft:b", ""]);
    expect(radios[0].checked).toBe(true);
    expect(d.querySelector("label[for=lost-key-none]")?.textContent).toMatch(/no key left/);
  });
});
