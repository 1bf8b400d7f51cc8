// (i) HR deactivates the person while their browser is signed in: the open session ends (the
// Rust test checks the passkeys are revoked).
import { scenario, BASE, home, checkpoint, check, enrolWithTicket, LAPTOP, PHONE } from './lib.mjs';

await scenario(async ({ page }) => {
  await enrolWithTicket(page, LAPTOP, PHONE);
  await home(page);
  await checkpoint('offboard');

  await page.goto(`${BASE}/me`);
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  check((await page.getByRole('heading', { name: 'Your sign-in methods' }).count()) === 0, 'the old session shows nothing');
});
