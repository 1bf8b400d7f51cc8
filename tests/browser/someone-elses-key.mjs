// (c) Ana, signed in with her laptop passkey, tampers with her own "Report lost" form to point
// at Ben's passkey: the service refuses and nothing changes (the Rust test compares the
// database).
import {
  scenario, Authenticators, newPage, need, redeem, add, signIn, home, row, reportLostButton, check,
  checkpoint, enrolWithTicket,
} from './lib.mjs';

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

  // Ana: a laptop and a phone passkey, then signed in with the laptop one, so the phone's row
  // offers "Report lost" and that form would work on her own phone.
  const first = await newPage(browser);
  const setup = await enrolWithTicket(
    first.page,
    { id: 'ana-laptop', transport: 'internal', what: 'laptop', name: 'Ana laptop' },
    { id: 'ana-phone', transport: 'hybrid', what: 'phone', name: 'Ana phone' },
  );
  const auth = await setup.moveTo(page);
  await auth.use('ana-laptop', 'internal');
  await signIn(page);
  const anaRow = row(page, 'Ana phone');
  const anaId = await anaRow.getAttribute('data-credential-id');
  await checkpoint('before-foreign-report');

  const button = reportLostButton(anaRow);
  await button.evaluate((b, [mine, theirs]) => {
    b.form.action = b.form.action.replace(mine, theirs);
  }, [anaId, benId]);
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/lost'));
  await button.click();
  const r = await answer;
  console.log(`report lost of Ben's passkey with Ana's session: ${r.status()}`);
  check(r.url().includes(benId), `the tampered form went to Ben's credential: ${r.url()}`);
  await page.getByRole('alert').filter({ hasText: /\S/ }).waitFor();
  const code = await page.getByRole('alert').getAttribute('data-code');
  console.log(`page says (${code}): ${await page.getByRole('alert').innerText()}`);
  // Refused because the passkey is not Ana's, not for some other reason.
  check(r.status() === 404 && code === 'credential_unknown', `refused as credential_unknown (404), got ${code} (${r.status()})`);

  await home(ben.page);
  const benText = await row(ben.page, 'Ben laptop').innerText();
  check(/Active/.test(benText) && !/Reported lost/.test(benText), `Ben's passkey is untouched: ${benText}`);
  await home(page);
  check(/Active/.test(await anaRow.innerText()), "Ana's phone passkey is untouched");
});
