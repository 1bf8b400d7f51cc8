// Shared helpers for the browser scenarios: Debian's Chromium driven by Playwright, WebAuthn
// answered by CDP virtual authenticators, axe-core for accessibility, full-page screenshots.
// Each scenario is one short script run by tests/e2e/browser.rs, which passes the service's
// address and any secrets (tickets) in the environment and checks the exit status.

import { readFileSync, readdirSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

/** The service's browser address (`http://localhost:PORT`), from the Rust test. */
export const BASE = need('KEYWARDEN_BASE_URL');

/** An environment variable the Rust test must set. */
export function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (the Rust test passes it)`);
  return v;
}

/** Fail the scenario with a message unless `cond` holds. */
export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

/**
 * Launch Chromium headless with its own context and page. Flags: no sandbox (root in a
 * container), nothing talking to Google, and `localhost` mapped to the IPv4 loopback the
 * service listens on.
 */
export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.KEYWARDEN_CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--host-resolver-rules=MAP localhost 127.0.0.1',
    ],
  });
  const { context, page } = await newPage(browser);
  return { browser, context, page };
}

/** A fresh context (no cookies) with one page. */
export async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => {
    if (m.type() === 'error') console.error(`page console: ${m.text()}`);
  });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  // A "are you sure?" dialog is answered yes, as the person clicking meant it.
  page.on('dialog', (d) => d.accept());
  return { context, page };
}

/** What each kind of virtual authenticator is, as CDP `WebAuthn.addVirtualAuthenticator` takes it. */
const TRANSPORT = { usb: 'usb', internal: 'internal', hybrid: 'hybrid' };

/**
 * The virtual authenticators of one page. One answers at a time: `use(name, kind, opts)`
 * detaches the one attached (keeping its credentials) and attaches the named one (with the
 * credentials it had), so the intended authenticator is the only one that can answer a
 * ceremony. `kind` is `usb` (a roaming security key), `internal` (this laptop's platform
 * authenticator) or `hybrid` (a phone over cross-device); `opts.synced` makes its passkeys
 * backup eligible and backed up (a synced passkey).
 */
export class Authenticators {
  static async on(page) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    return new Authenticators(cdp);
  }

  constructor(cdp) {
    this.cdp = cdp;
    this.known = new Map(); // name -> { options, credentials }
    this.current = null; // { name, id }
  }

  async use(name, kind, opts = {}) {
    if (this.current?.name === name) return this.current.id;
    await this.detach();
    let entry = this.known.get(name);
    if (!entry) {
      check(TRANSPORT[kind], `unknown authenticator kind ${kind}`);
      entry = {
        options: {
          protocol: 'ctap2',
          ctap2Version: 'ctap2_1',
          transport: TRANSPORT[kind],
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
          defaultBackupEligibility: !!opts.synced,
          defaultBackupState: !!opts.synced,
        },
        credentials: [],
      };
      this.known.set(name, entry);
    }
    const { authenticatorId } = await this.cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: entry.options,
    });
    for (const credential of entry.credentials) {
      await this.cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
    }
    this.current = { name, id: authenticatorId };
    return authenticatorId;
  }

  /** Detach the attached authenticator, keeping its credentials for a later `use`. */
  async detach() {
    if (!this.current) return;
    const { name, id } = this.current;
    const { credentials } = await this.cdp.send('WebAuthn.getCredentials', { authenticatorId: id });
    this.known.get(name).credentials = credentials;
    await this.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: id });
    this.current = null;
  }

  /** The same authenticators (with their credentials), used from another page or context. */
  async moveTo(page) {
    await this.detach();
    const next = await Authenticators.on(page);
    next.known = this.known;
    return next;
  }

  /** Credentials the named authenticator holds (attached or not). */
  async credentials(name) {
    if (this.current?.name === name) {
      const r = await this.cdp.send('WebAuthn.getCredentials', { authenticatorId: this.current.id });
      return r.credentials;
    }
    return this.known.get(name)?.credentials ?? [];
  }

  /** Put a credential (CDP `WebAuthn.Credential`) into the attached authenticator. */
  async addCredential(credential) {
    check(this.current, 'no authenticator attached');
    await this.cdp.send('WebAuthn.addCredential', { authenticatorId: this.current.id, credential });
  }

  /** Make the attached authenticator refuse (or give) user verification. */
  async setUserVerified(isUserVerified) {
    check(this.current, 'no authenticator attached');
    await this.cdp.send('WebAuthn.setUserVerified', { authenticatorId: this.current.id, isUserVerified });
  }
}

/**
 * A credential of the software key (test/demo), as its state file stores it (`id`, `rp_id`,
 * `user_id`, `sign_count`, `private_key_pem`), in the form CDP's `WebAuthn.addCredential`
 * takes: the key a person enrolled with the desktop app, now answering in the browser from a
 * virtual USB authenticator.
 */
export function softKeyCredential(stored) {
  const der = stored.private_key_pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return {
    credentialId: Buffer.from(stored.id, 'base64url').toString('base64'),
    isResidentCredential: !!stored.discoverable,
    rpId: stored.rp_id,
    privateKey: der,
    userHandle: Buffer.from(stored.user_id, 'base64url').toString('base64'),
    signCount: stored.sign_count,
  };
}

const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Run axe-core on the page as it is; throw, listing them, on any serious or critical
 * violation. The pages' strict CSP (`script-src 'self'`) would block an injected <script>, so
 * axe's source is evaluated through the DevTools protocol (`page.evaluate`), which CSP does not
 * govern; the page's own CSP stays on for everything else.
 */
export async function axeCheck(page, label) {
  const loaded = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!loaded) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () =>
    window.axe.run(document, { resultTypes: ['violations'] }),
  );
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of result.violations) {
    const where = v.nodes.map((n) => n.target.join(' ')).join(', ');
    console.error(`axe ${label}: ${v.impact} ${v.id}: ${v.help} [${where}]`);
  }
  check(bad.length === 0, `${label}: ${bad.length} serious or critical accessibility violations (listed above)`);
  console.log(`axe ${label}: no serious or critical violations (${result.passes?.length ?? 'n/a'} rules passed)`);
}

/** Folder for screenshots (KEYWARDEN_SCREENSHOTS, else target/screenshots/selfservice). */
export function screenshotDir() {
  const dir = process.env.KEYWARDEN_SCREENSHOTS || join('target', 'screenshots', 'selfservice');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Save a full-page screenshot as `<name>.png`; returns its path. */
export async function screenshot(page, name) {
  const path = join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
  return path;
}

/** Run a scenario: launch, call `body`, close; exit 1 with the error on failure. */
export async function scenario(body) {
  const limit = setTimeout(() => {
    console.error('scenario failed: still running after 150 s');
    process.exit(1);
  }, 150000);
  limit.unref();
  const name = process.argv[1].split('/').pop().replace(/\.mjs$/, '');
  const dir = screenshotDir();
  for (const f of readdirSync(dir)) {
    if (f.startsWith(`failure-${name}-`)) rmSync(join(dir, f), { force: true });
  }
  const env = await launch();
  try {
    await body(env);
    console.log('scenario passed');
  } catch (e) {
    console.error(`scenario failed: ${e.stack || e}`);
    // Every open page (scenarios use several browser sessions), as it was when it failed.
    const pages = env.browser.contexts().flatMap((c) => c.pages());
    for (const [i, page] of pages.entries()) {
      try {
        await screenshot(page, `failure-${name}-${i + 1}`);
        console.error(`page ${i + 1} (${new URL(page.url()).pathname}) at failure:\n${await page.locator('body').innerText()}`);
      } catch {
        // the page may be gone
      }
    }
    process.exitCode = 1;
  } finally {
    closeStdin();
    await env.browser.close();
  }
}

// --- Waiting for the Rust test --------------------------------------------------------------

let stdin = null; // { rl, lines } once a checkpoint was reached

/** Let the Rust test look at the service (e.g. snapshot its database), then go on. */
export async function checkpoint(name) {
  if (!stdin) {
    const { createInterface } = await import('node:readline');
    const rl = createInterface({ input: process.stdin });
    stdin = { rl, lines: rl[Symbol.asyncIterator]() };
  }
  console.log(`checkpoint ${name}`);
  const { done } = await stdin.lines.next();
  check(!done, `the Rust test closed the scenario at checkpoint ${name}`);
}

function closeStdin() {
  if (!stdin) return;
  stdin.rl.close();
  process.stdin.destroy();
}

// --- The self-service pages (CONTRACT: /me, /me/enrol, /me/add, /me/laptop) ------------------

/** Collect the `error.code` of every JSON error the page receives. */
export function errorCodes(page) {
  const codes = [];
  page.on('response', async (r) => {
    if (r.status() < 400) return;
    try {
      const body = await r.json();
      if (body?.error?.code) codes.push(body.error.code);
    } catch {
      // not JSON (a page or a redirect)
    }
  });
  return codes;
}

/** Open IT's enrolment link (the ticket in the fragment) and wait for the add page. */
export async function redeem(page, ticket) {
  await page.goto('about:blank'); // a fresh load even when only the fragment differs
  await page.goto(`${BASE}/me/enrol#ticket=${ticket}`);
  try {
    await page.waitForURL(/\/me\/add(\?|#|$)/);
  } catch (e) {
    const said = await page.locator('#status').innerText().catch(() => '(no #status)');
    throw new Error(`the enrolment link did not lead to /me/add; the page says: ${said}`, { cause: e });
  }
}

const ADD_BUTTON = { laptop: 'Add this laptop', phone: 'Add a phone' };

/** This laptop's passkey and a phone's, as `enrolWithTicket` takes them. */
export const LAPTOP = { id: 'laptop', transport: 'internal', what: 'laptop', name: 'Work laptop' };
export const PHONE = { id: 'phone', transport: 'hybrid', what: 'phone', name: 'My phone' };

/**
 * Redeem IT's enrolment link (`KW_TICKET`) and add `passkeys` in turn, each from its own
 * virtual authenticator; returns the page's authenticators.
 */
export async function enrolWithTicket(page, ...passkeys) {
  const auth = await Authenticators.on(page);
  await redeem(page, need('KW_TICKET'));
  for (const { id, transport, what, name } of passkeys) {
    await auth.use(id, transport);
    await add(page, what, name);
  }
  return auth;
}

/**
 * On a freshly loaded /me/add, with the attached authenticator answering, add a laptop or phone
 * passkey named `name`. Waits for the outcome in `#status` (progress messages end with "…")
 * and returns it; fails unless it matches `expect` (`null`: any outcome).
 */
export async function add(page, what, name, { expect = /^Added/ } = {}) {
  await page.goto(`${BASE}/me/add`);
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByRole('button', { name: ADD_BUTTON[what] }).click();
  const outcome = await settledStatus(page);
  check(expect === null || expect.test(outcome), `adding "${name}" (${what}): expected ${expect}, the page says: ${outcome}`);
  return outcome;
}

/** The text of `#status` once it holds an outcome rather than a progress message. */
export async function settledStatus(page) {
  await page.waitForFunction(() => {
    const t = document.querySelector('#status')?.textContent.trim();
    return t && !t.endsWith('…');
  });
  return (await page.locator('#status').innerText()).trim();
}

/** Sign in on /me with whichever authenticator is attached; waits for the signed-in page. */
export async function signIn(page) {
  await page.goto(`${BASE}/me`);
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await page.getByRole('heading', { level: 1, name: 'Your sign-in methods' }).waitFor();
}

/** Go to the signed-in home page. */
export async function home(page) {
  await page.goto(`${BASE}/me`);
  await page.getByRole('heading', { level: 1, name: 'Your sign-in methods' }).waitFor();
}

/** Sign out with the page's button; waits for the sign-in page. */
export async function signOut(page) {
  await home(page);
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/me/sign-out'));
  await page.getByRole('button', { name: 'Sign out' }).click();
  const r = await answer;
  const code = r.status() >= 400 ? await page.getByRole('alert').getAttribute('data-code').catch(() => null) : null;
  check(r.status() < 400, `signing out is accepted, got ${r.status()} ${code}`);
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
}

/** The row of `#authenticators` whose text contains `text` (a name or a kind). */
export function row(page, text) {
  return page.locator('#authenticators tr[data-credential-id]').filter({ hasText: text });
}

/** The "Report lost" button of a row. */
export function reportLostButton(rowLocator) {
  return rowLocator.getByRole('button', { name: 'Report lost', exact: true });
}

/** Rows of `#authenticators` as text, for messages. */
export async function rows(page) {
  return page.locator('#authenticators tr[data-credential-id]').allInnerTexts();
}

/** Index of the first of several waits to succeed; fails only when every one fails. */
export function firstOf(...waits) {
  return new Promise((resolve, reject) => {
    let failed = 0;
    waits.forEach((w, i) =>
      w.then(
        () => resolve(i),
        (e) => {
          failed += 1;
          if (failed === waits.length) reject(e);
        },
      ),
    );
  });
}
