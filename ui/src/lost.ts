// "Lost a key?" and recovery: which step follows which, what to say, what to check.
// Pure functions over generated types, so they are unit-tested without a window.
import type { CredentialView } from "./bindings/CredentialView";
import type { KeyInfo } from "./bindings/KeyInfo";
import type { SignInResponse } from "./bindings/SignInResponse";
import type { UiError } from "./bindings/UiError";

/**
 * sign-in: choose the key you still have and type its PIN; touch: waiting for it;
 * keys: who you are and your keys, pick the lost one; confirm: what reporting it does;
 * confirm-touch: waiting for the second touch; done: suspended, and what to do next;
 * recover: a recovery ticket and a key you still have, to enrol a replacement.
 */
export type LostStep = "sign-in" | "touch" | "keys" | "confirm" | "confirm-touch" | "done" | "recover";

export interface LostState {
  step: LostStep;
  /** Keys plugged in now. */
  keys: KeyInfo[];
  /** The key chosen to sign in with (or to prove a recovery with); null: none chosen yet. */
  keyId: string | null;
  /** In the recovery form: the help desk arranged approvals because no key is left. */
  noKeyLeft: boolean;
  signedIn: SignInResponse | null;
  /** The credential picked as lost (confirm), or reported lost (done). */
  lost: CredentialView | null;
  error: UiError | null;
  /** A problem with what was typed, found before anything was sent. */
  inputProblem: string | null;
  busy: boolean;
}

export function initialLostState(): LostState {
  return {
    step: "sign-in",
    keys: [],
    keyId: null,
    noKeyLeft: false,
    signedIn: null,
    lost: null,
    error: null,
    inputProblem: null,
    busy: false,
  };
}

/** The key to preselect: the one chosen before if still plugged in, else the only one. */
export function chosenKey(s: Pick<LostState, "keys" | "keyId">): KeyInfo | null {
  const k = s.keys.find((x) => x.id === s.keyId);
  if (k) return k;
  const usable = s.keys.filter((x) => x.pin_set && x.pin_retries !== 0);
  return usable.length === 1 ? usable[0] : null;
}

/** "active" / "suspended" / "revoked" as the person reads it. */
export function statusText(status: string): string {
  switch (status) {
    case "active":
      return "active";
    case "suspended":
      return "suspended: reported lost, it no longer works";
    case "revoked":
      return "revoked: it no longer works";
    default:
      return status;
  }
}

/** A short form of a credential id, to tell two keys of the same model apart. */
export function shortCredentialId(c: Pick<CredentialView, "id">): string {
  return c.id.slice(0, 8);
}

/** "Security key (test/demo), enrolled 3/5/2026, id AbCd1234". */
export function credentialName(c: CredentialView): string {
  const model = c.model ?? "Security key";
  return `${model}, enrolled ${new Date(Number(c.created_at_ms)).toLocaleDateString()}, id ${shortCredentialId(c)}`;
}

/** The credentials, with the one just reported replaced by what the service answered. */
export function withUpdated(list: CredentialView[], updated: CredentialView): CredentialView[] {
  return list.map((c) => (c.id === updated.id ? updated : c));
}

/** Which credentials can be reported lost: active ones other than the one signed in with. */
export function canReport(who: SignInResponse, c: CredentialView): boolean {
  return c.status === "active" && c.id !== who.signed_in_with;
}

/** What to do after reporting a key lost. */
export const AFTER_LOST: string[] = [
  "Ask the help desk for a recovery ticket. They check who you are first, and may ask you to come by with an ID.",
  "With the ticket, enrol a replacement here (Enrol a replacement, below) or with `keywarden recover` on the command line. It asks for a touch of the key you still have.",
  "Until then, sign in with the key you still have. Once the replacement is enrolled, the lost key is revoked for good.",
];

/** Where a step that failed shows its error: the form or page it was started from. */
export function failedAt(step: LostStep): LostStep {
  if (step === "touch") return "sign-in";
  if (step === "confirm-touch") return "confirm";
  return step;
}

/** Where the view goes after an error shown at `current`, and what the button says. */
export interface LostRecovery {
  step: LostStep;
  action: string;
}

export function lostRecovery(e: UiError, current: LostStep): LostRecovery {
  // The form that takes a key and its PIN: the recovery form, else signing in (after a PIN
  // problem at the confirmation the app has forgotten the PIN: sign in again).
  const form: LostStep = current === "recover" ? "recover" : "sign-in";
  switch (e.code) {
    case "pin_invalid":
      return { step: form, action: "Try the PIN again" };
    case "pin_auth_blocked":
      return { step: form, action: "I have replugged the key" };
    case "pin_blocked":
    case "credential_unknown":
      return { step: form, action: "Use another key" };
    case "credential_not_active":
      return current === "confirm" ? { step: "keys", action: "Back to my keys" } : { step: form, action: "Use another key" };
    case "step_up_same_key":
    case "credential_not_yours":
      return { step: "keys", action: "Choose another key" };
    case "needs_input":
      return current === "confirm" ? { step: "sign-in", action: "Sign in again" } : { step: current, action: "Try again" };
    case "key_removed":
    case "no_key":
      return { step: current, action: "Plug the key in and try again" };
    default:
      return { step: current, action: "Try again" };
  }
}
