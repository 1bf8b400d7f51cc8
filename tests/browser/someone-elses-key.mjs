// (c) Ana, signed in, tampers with her own "Report lost" form to point at Ben's passkey: the
// service refuses and nothing changes (the Rust test compares the database).
import { scenario, Authenticators, newPage, need, redeem, add, home, row, check, checkpoint } from './lib.mjs';

await scenario(async ({ browser, page }) => {
  // Ben's browser: his laptop passkey.
  const ben = await newPage(browser);
  const benAuth = await Authenticators.on(ben.page);
  await redeem(ben.page, need('KW_OTHER_TICKET'));
  await benAuth.use('ben-laptop', 'internal');
  await add(ben.page, 'laptop', 'Ben laptop');
  await home(ben.page);
  const benId = await row(ben.page, 'Ben laptop').getAttribute('data-credential-id');
  check(benId, "Ben's row carries its credential id");

  // Ana's browser: a laptop and a phone passkey, so one row offers "Report lost".
  const auth = await Authenticators.on(page);
  await redeem(page, need('KW_TICKET'));
  await auth.use('ana-laptop', 'internal');
  await add(page, 'laptop', 'Ana laptop');
  await auth.use('ana-phone', 'hybrid');
  await add(page, 'phone', 'Ana phone');
  await home(page);
  const anaRow = page.locator('#authenticators tr[data-credential-id]').filter({
    has: page.getByRole('button', { name: /Report lost/ }),
  }).first();
  const anaId = await anaRow.getAttribute('data-credential-id');
  await checkpoint('before-foreign-report');

  await anaRow.locator('form').filter({ has: page.getByRole('button', { name: /Report lost/ }) })
    .evaluate((form, [mine, theirs]) => {
      form.action = form.action.replace(encodeURIComponent(mine), encodeURIComponent(theirs)).replace(mine, theirs);
    }, [anaId, benId]);
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/lost'));
  await anaRow.getByRole('button', { name: /Report lost/ }).click();
  const r = await answer;
  console.log(`report lost of Ben's passkey with Ana's session: ${r.status()}`);
  check(r.url().includes(benId), `the tampered form went to Ben's credential: ${r.url()}`);
  check(r.status() === 403 || r.status() === 404, `refused with 403 or 404, got ${r.status()}`);

  await home(ben.page);
  const benText = await row(ben.page, 'Ben laptop').innerText();
  check(/Active/.test(benText) && !/Reported lost/.test(benText), `Ben's passkey is untouched: ${benText}`);
});
