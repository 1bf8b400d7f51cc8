// The Keywarden console's one script: passkey sign-in and first-admin setup, the theme button,
// and the action forms (`data-api`), which call the service's own API with the session's CSRF
// token; a sensitive action refused for want of a fresh touch asks for one and is sent again.
// Served by keywarden-server under a strict CSP (no inline code); built with Vite.

import {
  allowList,
  formBody,
  messageOf,
  parseApi,
  ServiceError,
  serviceError,
  wantsTouch,
  withAllowList,
} from './form';

const csrf = (): string =>
  document.querySelector('meta[name="kw-csrf"]')?.getAttribute('content') ?? '';

function say(text: string, kind: 'info' | 'error' = 'info'): void {
  const el = document.getElementById('status');
  if (!el) return;
  el.textContent = text;
  el.dataset.kind = kind;
}

async function call(method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-keywarden-csrf': csrf() },
    body: method === 'DELETE' ? undefined : JSON.stringify(body ?? {}),
  });
  const data: unknown = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw serviceError(res.status, data);
  return data;
}

interface Challenge {
  challenge_id: string;
  public_key: unknown;
}

async function assertWith(path: string): Promise<unknown> {
  const ch = (await call('POST', `${path}/begin`)) as Challenge;
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(
    ch.public_key as PublicKeyCredentialRequestOptionsJSON,
  );
  const credential = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential;
  return call('POST', `${path}/finish`, { challenge_id: ch.challenge_id, credential: credential.toJSON() });
}

async function signIn(): Promise<void> {
  try {
    say('Touch your key, or confirm on your device…');
    await assertWith('/api/v1/me/sign-in');
    location.assign('/console');
  } catch (e) {
    say(messageOf(e), 'error');
  }
}

async function setup(form: HTMLFormElement): Promise<void> {
  const code = new URLSearchParams(location.hash.slice(1)).get('code');
  if (!code) {
    say('This page needs the setup link the service wrote at its first start.', 'error');
    return;
  }
  const fields = new FormData(form);
  try {
    const ch = (await call('POST', '/api/v1/console/setup/begin', {
      code,
      user_name: String(fields.get('user_name') ?? ''),
      display_name: String(fields.get('display_name') ?? ''),
    })) as Challenge;
    say('Touch your key, or confirm on your device…');
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(
      ch.public_key as PublicKeyCredentialCreationOptionsJSON,
    );
    const credential = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential;
    await call('POST', '/api/v1/console/setup/finish', {
      challenge_id: ch.challenge_id,
      credential: credential.toJSON(),
    });
    // The secret leaves the address bar and the history once it is used.
    history.replaceState(null, '', location.pathname);
    location.assign('/console');
  } catch (e) {
    say(messageOf(e), 'error');
  }
}

/**
 * Send a form's call (the pressed button's `data-api` and `data-done` win over the form's);
 * after `fresh_touch_required`, touch the key and send it once more. A form with
 * `data-json="field"` sends that field's JSON as the body.
 */
async function act(form: HTMLFormElement, button: HTMLElement | null): Promise<void> {
  const api = parseApi(button?.dataset.api ?? form.dataset.api);
  if (!api) return;
  const fields: [string, string][] = [];
  new FormData(form).forEach((v, k) => fields.push([k, String(v)]));
  let body: unknown;
  const json = form.dataset.json;
  if (json) {
    try {
      body = JSON.parse(String(new FormData(form).get(json) ?? ''));
    } catch (e) {
      say(`The definition is not valid JSON: ${messageOf(e)}`, 'error');
      return;
    }
  } else {
    body = formBody(fields, (form.dataset.numbers ?? '').split(' ').filter(Boolean));
  }
  let answer: unknown;
  try {
    try {
      answer = await call(api.method, api.path, body);
    } catch (e) {
      if (!wantsTouch(e)) throw e;
      say('This action needs a fresh touch: touch your key, or confirm on your device…');
      await assertWith('/api/v1/me/step-up');
      answer = await call(api.method, api.path, body);
    }
  } catch (e) {
    say(messageOf(e), 'error');
    return;
  }
  done(button?.dataset.done ?? form.dataset.done, answer);
}

function done(what: string | undefined, answer: unknown): void {
  const out = document.getElementById('result');
  const a = (answer ?? {}) as Record<string, unknown>;
  if (what === 'show-link' && out) {
    out.textContent = `Enrolment link for the person (works once, until ${new Date(Number(a.expires_at_ms)).toISOString()}; send it over a channel you trust; it is not shown again):\n${String(a.web_link ?? a.secret)}`;
    say('Ticket issued.');
  } else if (what === 'show-recovery' && out) {
    const r = (a.recovery ?? a) as Record<string, unknown>;
    out.textContent = `Recovery ${String(r.id ?? '')} started (${String(r.kind ?? '')}). Recovery ticket for the person (shown once): ${String(a.ticket ?? '')}`;
    say('Recovery started.');
  } else if (what === 'show-preview' && out) {
    const names = (list: unknown): string =>
      ((list as { user_name: string; after: string }[]) ?? [])
        .map((c) => `${c.user_name} (${c.after.replace(/_/g, ' ')})`)
        .join(', ') || 'nobody';
    out.textContent =
      `If saved: ${String(a.compliant_now)} people meet their policy now, ${String(a.compliant_after)} after.\n` +
      `Falling out of compliance (${String(a.falling_out_count)}): ${names(a.falling_out)}\n` +
      `Coming into compliance (${String(a.coming_in_count)}): ${names(a.coming_in)}\nNothing was saved.`;
    say('Impact previewed; nothing was saved.');
  } else {
    location.reload();
  }
}

/**
 * A key-model picker (`fieldset[data-allow-list]`) writes what it stands for into its form's
 * definition (`data-json`) as the policy's `aaguid_allow_list`, whenever a box or the typed list
 * changes; Preview and Save then send the definition as usual.
 */
function picker(fieldset: HTMLFieldSetElement): void {
  const form = fieldset.form;
  const spec = form?.elements.namedItem(form.dataset.json ?? '');
  if (!(spec instanceof HTMLTextAreaElement)) return;
  const update = (): void => {
    const ticked = Array.from(
      fieldset.querySelectorAll<HTMLInputElement>('input[type="checkbox"]:checked'),
      (b) => b.value,
    );
    const typed = fieldset.querySelector<HTMLTextAreaElement>('textarea[data-other]')?.value ?? '';
    const next = withAllowList(spec.value, allowList(ticked, typed));
    if (next === null) {
      say('The definition is not valid JSON: fix it before picking key models.', 'error');
      return;
    }
    spec.value = next;
  };
  fieldset.addEventListener('change', update);
  fieldset.addEventListener('input', update);
}

/** Show the theme in force on the button; `set` makes a choice (kept across pages). */
function theme(button: HTMLButtonElement, set?: string): void {
  const root = document.documentElement;
  if (set === 'dark' || set === 'light') root.dataset.theme = set;
  const dark = root.dataset.theme
    ? root.dataset.theme === 'dark'
    : matchMedia('(prefers-color-scheme: dark)').matches;
  button.setAttribute('aria-pressed', String(dark));
}

function start(): void {
  const themeButton = document.querySelector<HTMLButtonElement>('[data-action="theme"]');
  if (themeButton) {
    const saved = localStorage.getItem('kw-theme') ?? undefined;
    theme(themeButton, saved);
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => theme(themeButton));
    themeButton.addEventListener('click', () => {
      const next = themeButton.getAttribute('aria-pressed') === 'true' ? 'light' : 'dark';
      localStorage.setItem('kw-theme', next);
      theme(themeButton, next);
    });
  }
  document.querySelector('[data-action="sign-in"]')?.addEventListener('click', () => void signIn());
  const setupForm = document.querySelector<HTMLFormElement>('form[data-action="setup"]');
  setupForm?.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void setup(setupForm);
  });
  document.querySelectorAll<HTMLFieldSetElement>('fieldset[data-allow-list]').forEach(picker);
  document.querySelectorAll<HTMLFormElement>('form[data-api]').forEach((form) => {
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void act(form, (ev as SubmitEvent).submitter);
    });
  });
}

export { ServiceError };
start();
