// (j) Every self-service page, as a person sees it: axe-core finds no serious or critical
// violation, and a full-page screenshot of each is saved.
import { scenario, Authenticators, BASE, need, redeem, add, home, axeCheck, screenshot } from './lib.mjs';

await scenario(async ({ page }) => {
  async function look(name) {
    await axeCheck(page, name);
    await screenshot(page, name);
  }
  await page.goto(`${BASE}/me`);
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  await look('signed-out');

  // An enrolment link that is no good (the page shows its error; no real ticket on screen).
  await page.goto(`${BASE}/me/enrol#ticket=not-a-ticket`);
  await page.getByRole('alert').filter({ hasText: /\S/ }).waitFor();
  await look('enrol-refused');

  const auth = await Authenticators.on(page);
  await redeem(page, need('KW_TICKET'));
  await look('add');
  await auth.use('laptop', 'internal');
  await add(page, 'laptop', 'Work laptop');
  await look('add-done');

  await home(page);
  await look('home');

  await page.goto(`${BASE}/me/laptop`);
  await page.getByRole('heading', { level: 1 }).waitFor();
  await look('laptop');
});
