// (f) Sign in with the laptop passkey and report the phone lost: its row says so, and the key
// used to sign in offers no "Report lost".
import {
  scenario, newPage, signIn, home, row, reportLostButton, screenshot, check, enrolWithTicket, LAPTOP, PHONE,
} from './lib.mjs';

await scenario(async ({ browser, page }) => {
  const auth = await enrolWithTicket(page, LAPTOP, PHONE);

  const fresh = await newPage(browser);
  const auth2 = await auth.moveTo(fresh.page);
  await auth2.use('laptop', 'internal');
  await signIn(fresh.page);
  const laptop = row(fresh.page, 'Work laptop');
  check((await reportLostButton(laptop).count()) === 0, 'the passkey used to sign in offers no "Report lost"');
  const answer = fresh.page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/lost'));
  await reportLostButton(row(fresh.page, 'My phone')).click();
  const r = await answer;
  const sent = await r.request().allHeaders();
  console.log(`report lost: ${r.status()} (the browser sent Origin: ${sent.origin}, Sec-Fetch-Site: ${sent['sec-fetch-site']})`);
  check(r.status() < 400, `the report is accepted; the page says: ${await fresh.page.locator('main').innerText()}`);
  await home(fresh.page);
  const phone = await row(fresh.page, 'My phone').innerText();
  check(/Reported lost/.test(phone), `the phone's row says Reported lost: ${phone}`);
  check(/Active/.test(await laptop.innerText()), 'the laptop passkey stays active');
  await screenshot(fresh.page, 'home-reported-lost');
});
