// (i) HR deactivates the person while their browser is signed in: the open session ends (the
// Rust test checks the passkeys are revoked).
import { scenario, Authenticators, BASE, need, redeem, add, home, checkpoint, check } from './lib.mjs';

await scenario(async ({ page }) => {
  const auth = await Authenticators.on(page);
  await redeem(page, need('KW_TICKET'));
  await auth.use('laptop', 'internal');
  await add(page, 'laptop', 'Work laptop');
  await auth.use('phone', 'hybrid');
  await add(page, 'phone', 'My phone');
  await home(page);
  await checkpoint('offboard');

  await page.goto(`${BASE}/me`);
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  check((await page.getByRole('heading', { name: 'Your sign-in methods' }).count()) === 0, 'the old session shows nothing');
});
