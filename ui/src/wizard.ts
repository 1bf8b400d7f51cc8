// The enrolment wizard's logic: which step follows which, what to say, what to check.
// Pure functions over generated types, so they are unit-tested without a window.
import type { CredentialView } from "./bindings/CredentialView";
import type { ErrorCode } from "./bindings/ErrorCode";
import type { KeyInfo } from "./bindings/KeyInfo";
import type { UiError } from "./bindings/UiError";
import type { WizardSession } from "./bindings/WizardSession";

/**
 * ticket: redeem an enrolment ticket; prove: "Add a key": confirm who you are with a key you
 * already have (instead of a ticket); then the same steps for the new key.
 */
export type Step = "ticket" | "prove" | "choose" | "pin" | "touch" | "enrolled" | "summary";

/** The steps in order, as the progress list shows them ("Add a key" starts at `prove`). */
export const STEPS: { step: Step; title: string }[] = [
  { step: "ticket", title: "Ticket" },
  { step: "choose", title: "Choose a key" },
  { step: "pin", title: "PIN" },
  { step: "touch", title: "Touch" },
  { step: "enrolled", title: "Enrolled" },
  { step: "summary", title: "Summary" },
];

/**
 * The shortest PIN this key accepts (CTAP's floor is 4), or, for a new PIN in an enrolment, the
 * population's minimum when that is longer: the key is about to be set to it.
 */
export function minPinLength(key: KeyInfo, session?: Pick<WizardSession, "key_policy"> | null): number {
  return Math.max(4, key.min_pin_length ?? 4, session?.key_policy?.min_pin_length ?? 0);
}

/**
 * Whether the key demands a new PIN before it can be used (set by IT, or by a minimum PIN
 * length raised above its PIN's): the PIN step then asks for the current PIN and a new one.
 */
export function needsPinChange(key: KeyInfo): boolean {
  return key.pin_set && key.force_pin_change === true;
}

/**
 * What the key enforces itself, as the service recorded it at enrolment: "This key asks for a
 * PIN of at least 10 characters, and for the PIN at every use." Null when nothing was recorded.
 */
export function onKeyText(c: Pick<CredentialView, "on_key">): string | null {
  const k = c.on_key;
  if (!k) return null;
  const parts: string[] = [];
  if (k.min_pin_length != null) parts.push(`a PIN of at least ${k.min_pin_length} characters`);
  if (k.always_uv === true) parts.push("the PIN at every use");
  return parts.length ? `This key asks for ${parts.join(", and for ")}.` : null;
}

/** A new PIN typed twice: null when acceptable, else what is wrong. */
export function checkNewPin(first: string, again: string, minLen: number): string | null {
  const chars = [...first].length;
  if (chars < minLen) return `The PIN needs at least ${minLen} characters (this one has ${chars}).`;
  if (new TextEncoder().encode(first).length > 63) return "The PIN is too long: at most 63 bytes.";
  if (first !== again) return "The two PINs are not the same. Type the new PIN twice.";
  return null;
}

/** A warning to show above the PIN field, when attempts are running low. */
export function pinWarning(retries: number | null | undefined): string | null {
  if (retries == null) return null;
  if (retries === 0) return "This key's PIN is blocked: no attempt is left. Use another key or ask the help desk.";
  if (retries === 1) return "Only one PIN attempt is left. Keywarden will not use it: ask the help desk.";
  if (retries === 2)
    return "Careful: 2 attempts left. One more wrong PIN leaves a single attempt before the key locks for good.";
  if (retries <= 3) return `Careful: ${retries} attempts left before the key locks for good.`;
  return null;
}

/** "You have 1 of 2 required authenticators." */
export function coverageText(s: Pick<WizardSession, "active_authenticators" | "required_authenticators">): string {
  return `You have ${s.active_authenticators} of ${s.required_authenticators} required authenticator${
    s.required_authenticators === 1 ? "" : "s"
  }.`;
}

/**
 * Whether the person meets their organisation's policy: the service's word after a key (the
 * count and the kinds of device), else the count.
 */
export function covered(
  s: Pick<WizardSession, "active_authenticators" | "required_authenticators" | "meets_policy">,
): boolean {
  return s.meets_policy ?? s.active_authenticators >= s.required_authenticators;
}

/** What to tell someone about a lost key, on the summary. */
export const LOST_KEY_ADVICE =
  "If you lose a key, report it at once under “Lost a key?” here, or tell the help desk: it is suspended, and you sign in with your other key until a replacement is enrolled.";

/** "14:05": a time of day as the person's clock shows it, hours and minutes. */
export function clockTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** What the wizard says once it handed the one-time link to the browser (never the link). */
export function webLinkOpenedText(expiresAtMs: number): string {
  return `We opened your browser: finish there. This link works once, until ${clockTime(expiresAtMs)}.`;
}

/** Where the wizard goes after an error, and what the button says. */
export interface Recovery {
  step: Step;
  action: string;
}

export function recovery(e: UiError, current: Step): Recovery {
  if (current === "prove") return proveRecovery(e);
  switch (e.code) {
    // A ticket for someone who already has a key: they confirm with it instead ("Add a key").
    case "step_up_required":
      return { step: "prove", action: "Confirm with a key I have" };
    // The service asked to sign for another organisation: nothing to retry here.
    case "rp_mismatch":
    case "rp_not_pinned":
      return { step: "ticket", action: "Back to the start" };
    case "pin_invalid":
      return { step: "pin", action: "Try the PIN again" };
    case "pin_policy":
    case "pin_rejected":
      return { step: "pin", action: "Choose another PIN" };
    // The key asks for a new PIN first: the PIN step asks for the current one and a new one.
    case "pin_change_required":
      return { step: "pin", action: "Change the PIN" };
    case "pin_auth_blocked":
      return { step: "choose", action: "I have replugged the key" };
    case "pin_blocked":
    case "already_enrolled":
    case "key_full":
      return { step: "choose", action: "Use another key" };
    case "key_removed":
    case "no_key":
      return { step: "choose", action: "Plug the key in and choose it again" };
    case "touch_timeout":
    case "touch_denied":
      return { step: "pin", action: "Try again" };
    // The browser link was for another origin: nothing to retry here either.
    case "web_link_not_ours":
      return { step: "ticket", action: "Back to the start" };
    // No browser started: the message says where to go by hand; the wizard stays where it is.
    case "browser_not_opened":
      return { step: current, action: "OK" };
    case "ticket_expired":
    case "ticket_used":
    case "ticket_unknown":
    case "enrolment_expired":
    case "enrolment_closed":
    case "enrolment_unknown":
    case "enrolment_wrong_device":
    case "ceremony_expired":
    case "needs_input":
      return { step: "ticket", action: "Enter a new ticket" };
    case "service_unreachable":
      return { step: current === "touch" ? "pin" : current, action: "Try again" };
    default:
      return { step: current === "touch" ? "pin" : current, action: "Try again" };
  }
}

/** Errors while confirming with a key you have ("Add a key"): stay on that form. */
function proveRecovery(e: UiError): Recovery {
  switch (e.code) {
    case "pin_invalid":
      return { step: "prove", action: "Try the PIN again" };
    case "pin_auth_blocked":
      return { step: "prove", action: "I have replugged the key" };
    case "pin_blocked":
    case "credential_unknown":
    case "credential_not_active":
    case "step_up_wrong_person":
      return { step: "prove", action: "Use another key" };
    case "rp_mismatch":
    case "rp_not_pinned":
      return { step: "ticket", action: "Back to the start" };
    case "key_removed":
    case "no_key":
      return { step: "prove", action: "Plug the key in and try again" };
    default:
      return { step: "prove", action: "Try again" };
  }
}

/** Whether a key can confirm who you are: it has a PIN that is not blocked. */
export function canProve(k: KeyInfo): boolean {
  return k.pin_set && k.pin_retries !== 0;
}

/** Turn what a Tauri command rejected with into a UiError. */
export function asUiError(e: unknown): UiError {
  if (typeof e === "object" && e !== null && "code" in e && "message" in e) {
    const o = e as { code: unknown; message: unknown; retries_left?: unknown };
    return {
      // The agent serialises its ErrorCode enum, so what arrives is one of the generated union.
      code: String(o.code) as ErrorCode,
      message: String(o.message),
      retries_left: typeof o.retries_left === "number" ? o.retries_left : null,
    };
  }
  return { code: "agent_error", message: String(e), retries_left: null };
}

/** A short form of the key's stable id, to tell two keys of the same model apart. */
export function shortId(k: KeyInfo): string {
  const tail = k.id.includes(":") ? k.id.slice(k.id.indexOf(":") + 1) : k.id;
  return tail.slice(0, 8);
}

/** One line about a key for the chooser: firmware, PIN state, short id. */
export function keySummary(k: KeyInfo): string {
  const parts: string[] = [];
  parts.push(k.firmware_version != null ? `firmware ${k.firmware_version}` : "firmware not reported");
  if (!k.pin_set) parts.push("no PIN yet");
  else if (k.pin_retries === 0) parts.push("PIN blocked");
  else if (k.pin_retries === 1) parts.push("PIN set, 1 attempt left");
  else parts.push(k.pin_retries != null ? `PIN set, ${k.pin_retries} attempts left` : "PIN set");
  parts.push(`id ${shortId(k)}`);
  return parts.join(" · ");
}

/** `keys` with what a wrong PIN left on the key `keyId`: the retries `e` reports, when it does. */
export function withRetriesLeft(keys: KeyInfo[], keyId: string, e: UiError): KeyInfo[] {
  if (e.retries_left == null) return keys;
  return keys.map((k) => (k.id === keyId ? { ...k, pin_retries: e.retries_left } : k));
}

/** Ids as a set, to see keys come and go between two polls. */
export function sameKeys(a: KeyInfo[], b: KeyInfo[]): boolean {
  const ids = (l: KeyInfo[]) => l.map((k) => `${k.id}/${k.pin_set}/${k.pin_retries}`).sort().join(",");
  return ids(a) === ids(b);
}
