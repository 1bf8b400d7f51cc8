// (j) Every self-service page, as a person sees it: axe-core finds no serious or critical
// violation, and a full-page screenshot of each is saved.
import { scenario, Authenticators, BASE, need, redeem, add, home, axeCheck, screenshot, check } from './lib.mjs';

await scenario(async ({ page }) => {
  const failed = [];
  // Every page is photographed and checked even when an earlier one fails the check.
  async function look(name) {
    await screenshot(page, name);
    try {
      await axeCheck(page, name);
    } catch (e) {
      console.error(String(e));
      failed.push(name);
    }
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
  check(failed.length === 0, `serious or critical accessibility violations on: ${failed.join(', ')}`);
});
