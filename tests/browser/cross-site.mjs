// (h) Forged posts to "Report lost": from a page on another site (without and with a leaked
// csrf value), and from the service's own origin without the csrf field. Each is refused with
// 403 and changes nothing (the Rust test compares the database).
import http from 'node:http';
import {
  scenario, newPage, BASE, signIn, home, row, checkpoint, check, enrolWithTicket, LAPTOP, PHONE,
} from './lib.mjs';

/** A site of the attacker's on another 127.0.0.1 port: one page whose form posts itself. */
async function attackerSite(action, csrf) {
  const html = `<!doctype html><html lang="en"><head><title>Win a prize</title></head><body>
<form method="post" action="${action}"><input type="hidden" name="csrf" value="${csrf}"></form>
<script>document.forms[0].submit()</script></body></html>`;
  const server = http.createServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(html);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

await scenario(async ({ browser, page }) => {
  // The victim has a laptop and a phone passkey and is signed in with the laptop one, so a
  // genuine "Report lost" of the phone would be accepted.
  const first = await newPage(browser);
  const setup = await enrolWithTicket(first.page, LAPTOP, PHONE);
  const auth = await setup.moveTo(page);
  await auth.use('laptop', 'internal');
  await signIn(page);
  const phone = row(page, 'My phone');
  const id = await phone.getAttribute('data-credential-id');
  const realCsrf = await phone.locator('input[name="csrf"]').first().inputValue();
  const action = `${BASE}/me/credentials/${encodeURIComponent(id)}/lost`;
  await checkpoint('before-forged-posts');

  for (const [what, csrf] of [['forged csrf', 'forged'], ['leaked csrf', realCsrf]]) {
    const site = await attackerSite(action, csrf);
    const answer = page.waitForResponse((r) => r.url() === action && r.request().method() === 'POST');
    await page.goto(site.url);
    const r = await answer;
    console.log(`cross-site post with a ${what}: ${r.status()}`);
    check(r.status() === 403, `cross-site post with a ${what} refused with 403, got ${r.status()}`);
    const code = await page.getByRole('alert').getAttribute('data-code');
    check(code === 'csrf_refused', `refused as csrf_refused, got ${code}`);
    site.close();
  }

  // Same origin, signed in, but no csrf field.
  await home(page);
  const status = await page.evaluate(async (url) => {
    const r = await fetch(url, { method: 'POST', body: new URLSearchParams({ name: 'x' }), redirect: 'manual' });
    return r.status;
  }, action);
  console.log(`same-origin post without csrf: ${status}`);
  check(status === 403, `a post without csrf is refused with 403, got ${status}`);

  await home(page);
  const text = await row(page, 'My phone').innerText();
  check(/Active/.test(text) && !/Reported lost/.test(text), `the phone passkey is untouched: ${text}`);
});
