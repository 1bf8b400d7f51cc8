// (a) Redeem IT's enrolment link and add this laptop's passkey; the home page lists it.
import {
  scenario, newPage, BASE, need, home, row, rows, check, enrolWithTicket, LAPTOP,
} from './lib.mjs';

await scenario(async ({ browser, page }) => {
  await enrolWithTicket(page, LAPTOP);
  await home(page);
  const laptop = row(page, 'Work laptop');
  check((await laptop.count()) === 1, `one "Work laptop" row: ${await rows(page)}`);
  const text = await laptop.innerText();
  check(/Laptop passkey/.test(text) && /Active/.test(text), `the row says Laptop passkey, Active: ${text}`);
  check(!/synced/i.test(text), `not synced: ${text}`);

  // The link works once: opened again (say, from the mail on another computer) it is refused.
  const again = await newPage(browser);
  await again.page.goto(`${BASE}/me/enrol#ticket=${need('KW_TICKET')}`);
  const alert = again.page.getByRole('alert').filter({ hasText: /\S/ });
  await alert.waitFor();
  console.log(`the link opened again: ${await alert.innerText()}`);
  check(new URL(again.page.url()).pathname === '/me/enrol', 'a used link leads nowhere');
});
