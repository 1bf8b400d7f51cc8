// Keywarden self-service pages: the WebAuthn ceremonies. Everything else on these pages works
// without script (plain forms). Served by keywarden-server under a strict CSP: no inline code.

const byId = (id) => document.getElementById(id);
const csrf = () => document.querySelector('meta[name="kw-csrf"]')?.getAttribute('content') ?? '';

function say(text, kind = 'info') {
  const el = byId('status');
  if (!el) return;
  el.textContent = text;
  el.dataset.kind = kind;
}

class ServiceError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

async function call(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-keywarden-csrf': csrf() },
    body: JSON.stringify(body ?? {}),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new ServiceError(data?.error?.code ?? 'http_' + res.status,
      data?.error?.message ?? `the service answered ${res.status}`);
  }
  return data;
}

// A sentence for what went wrong, from the service or from the browser's WebAuthn.
function messageOf(e) {
  if (e instanceof ServiceError) return e.message;
  if (e?.name === 'NotAllowedError') return 'The request was cancelled or timed out. Try again.';
  if (e?.name === 'InvalidStateError') return 'This device already holds one of your passkeys.';
  if (e?.name === 'NotSupportedError') return 'This browser cannot make this kind of passkey.';
  return String(e?.message ?? e);
}

// An assertion for `path` (sign-in or step-up): begin, ask the browser, finish.
async function assertWith(path) {
  const ch = await call(`${path}/begin`);
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(ch.public_key);
  const credential = await navigator.credentials.get({ publicKey });
  return call(`${path}/finish`, { challenge_id: ch.challenge_id, credential: credential.toJSON() });
}

async function redeem() {
  const params = new URLSearchParams(location.hash.slice(1));
  // The secret leaves the address bar and the history at once.
  history.replaceState(null, '', location.pathname);
  const ticket = params.get('ticket');
  const link = params.get('link');
  const failed = (message) => {
    byId('checking')?.setAttribute('hidden', '');
    say(message, 'error');
  };
  if (!ticket && !link) {
    failed('This page needs the enrolment link IT sent you, or the one the Keywarden app opened.');
    return;
  }
  try {
    if (ticket) await call('/api/v1/me/session/ticket', { ticket });
    else await call('/api/v1/me/session/link', { link });
    location.assign('/me/add');
  } catch (e) {
    failed(messageOf(e));
  }
}

async function signIn() {
  try {
    say('Touch your key, or confirm on your device…');
    await assertWith('/api/v1/me/sign-in');
    location.assign('/me');
  } catch (e) {
    say(messageOf(e), 'error');
  }
}

async function confirmKey() {
  try {
    say('Touch a key you already have…');
    await assertWith('/api/v1/me/step-up');
    byId('step-up')?.setAttribute('hidden', '');
    say('Confirmed. Now add your passkey.', 'ok');
  } catch (e) {
    say(messageOf(e), 'error');
  }
}

const LABELS = { platform: 'this laptop\u2019s passkey', phone: 'your phone\u2019s passkey' };

async function addPasskey(kind) {
  const name = byId('passkey-name')?.value ?? '';
  try {
    let ch;
    try {
      ch = await call('/api/v1/me/passkeys/begin', { class: kind, name });
    } catch (e) {
      if (e instanceof ServiceError && e.code === 'step_up_required') {
        byId('step-up')?.removeAttribute('hidden');
      }
      throw e;
    }
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(ch.public_key);
    say(kind === 'platform' ? 'Confirm on this laptop…' : 'Scan the code with your phone and confirm there…');
    const credential = await navigator.credentials.create({ publicKey });
    const done = await call('/api/v1/me/passkeys/finish', {
      challenge_id: ch.challenge_id,
      credential: credential.toJSON(),
    });
    say(`Added ${LABELS[kind]}. ${done.coverage.text}`, 'ok');
  } catch (e) {
    say(messageOf(e), 'error');
  }
}

function start() {
  const page = document.body.dataset.page;
  if (page === 'enrol') redeem();
  byId('sign-in')?.addEventListener('click', signIn);
  byId('confirm-key')?.addEventListener('click', confirmKey);
  byId('add-platform')?.addEventListener('click', () => addPasskey('platform'));
  byId('add-phone')?.addEventListener('click', () => addPasskey('phone'));
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
