// (a) Redeem IT's enrolment link and add this laptop's passkey; the home page lists it.
import { scenario, Authenticators, need, redeem, add, home, row, rows, check } from './lib.mjs';

await scenario(async ({ page }) => {
  const auth = await Authenticators.on(page);
  await redeem(page, need('KW_TICKET'));
  await auth.use('laptop', 'internal');
  await add(page, 'laptop', 'Work laptop');
  await home(page);
  const laptop = row(page, 'Work laptop');
  check((await laptop.count()) === 1, `one "Work laptop" row: ${await rows(page)}`);
  const text = await laptop.innerText();
  check(/Laptop passkey/.test(text) && /Active/.test(text), `the row says Laptop passkey, Active: ${text}`);
  check(!/synced/i.test(text), `not synced: ${text}`);
});
