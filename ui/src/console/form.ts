// Pure helpers of the console's script: reading an action form into the JSON body the API
// takes, naming the endpoint it goes to, and what to say when the service refuses.

import type { ErrorBody } from '../bindings/ErrorBody';
import type { ErrorCode } from '../bindings/ErrorCode';

/** An API call a form declares as `data-api="METHOD /path"`. */
export interface ApiCall {
  method: 'POST' | 'PUT' | 'DELETE';
  path: string;
}

/** Read `data-api`; only the console's own API paths and the three changing methods. */
export function parseApi(spec: string | undefined | null): ApiCall | null {
  const m = /^(POST|PUT|DELETE) (\/api\/v1\/[A-Za-z0-9/_-]+)$/.exec(spec ?? '');
  return m ? { method: m[1] as ApiCall['method'], path: m[2] } : null;
}

/**
 * The JSON body of a form's fields; a dotted name (`proofing.method`) nests; the fields named in
 * `numbers` are sent as numbers, and an empty field is left out.
 */
export function formBody(fields: Iterable<[string, string]>, numbers: string[] = []): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [name, text] of fields) {
    if (text === '') continue;
    const value: unknown = numbers.includes(name) ? Number(text) : text;
    const parts = name.split('.');
    let at = body;
    for (const p of parts.slice(0, -1)) {
      const next = at[p];
      if (typeof next === 'object' && next !== null) {
        at = next as Record<string, unknown>;
      } else {
        const made: Record<string, unknown> = {};
        at[p] = made;
        at = made;
      }
    }
    at[parts[parts.length - 1]] = value;
  }
  return body;
}

/** A refusal by the service: its code (from the one vocabulary) and sentence. */
export class ServiceError extends Error {
  constructor(
    readonly code: ErrorCode | `http_${number}`,
    message: string,
  ) {
    super(message);
  }
}

/** The service's error from a failed answer's body (or what the status says). */
export function serviceError(status: number, body: unknown): ServiceError {
  const e = (body as Partial<ErrorBody> | null)?.error;
  if (e && typeof e.code === 'string' && typeof e.message === 'string') {
    return new ServiceError(e.code, e.message);
  }
  return new ServiceError(`http_${status}`, `the service answered ${status}`);
}

/** Whether a refusal is answered by touching the key and sending the same call again. */
export function wantsTouch(e: unknown): boolean {
  return e instanceof ServiceError && e.code === 'fresh_touch_required';
}

/** A sentence for what went wrong, from the service or from the browser's WebAuthn. */
export function messageOf(e: unknown): string {
  if (e instanceof ServiceError) return e.message;
  const name = (e as { name?: string } | null)?.name;
  if (name === 'NotAllowedError') return 'The request was cancelled or timed out. Try again.';
  if (name === 'InvalidStateError') return 'This authenticator already holds a passkey here.';
  return String((e as { message?: string } | null)?.message ?? e);
}

/** The allow-list a picker stands for: the ticked models, then the AAGUIDs typed one per line
 * (blank lines dropped), in lower case, each once. */
export function allowList(ticked: string[], typed: string): string[] {
  const all = [...ticked, ...typed.split('\n')].map((a) => a.trim().toLowerCase()).filter(Boolean);
  return [...new Set(all)];
}

/** A population's definition (its JSON text) with the policy's AAGUID allow-list replaced, laid
 * out as the page shows it; `null` when the text is not a JSON object. */
export function withAllowList(spec: string, aaguids: string[]): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(spec);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const definition = parsed as Record<string, unknown>;
  const policy =
    typeof definition.policy === 'object' && definition.policy !== null
      ? (definition.policy as Record<string, unknown>)
      : {};
  definition.policy = { ...policy, aaguid_allow_list: aaguids };
  return JSON.stringify(definition, null, 2);
}
