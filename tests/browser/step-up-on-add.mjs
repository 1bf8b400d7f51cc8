// (c) A session whose proof has aged (signed in more than five minutes ago) cannot add a
// passkey until a key the person already has confirms it: the page asks for that key first,
// an attempt without it is refused (step_up_required), and after the confirmation it works.
import {
  scenario, Authenticators, BASE, need, redeem, add, errorCodes, settledStatus, checkpoint, check, screenshot, axeCheck,
} from './lib.mjs';

await scenario(async ({ page }) => {
  const codes = errorCodes(page);
  const auth = await Authenticators.on(page);
  await redeem(page, need('KW_TICKET'));
  await auth.use('laptop', 'internal');
  await add(page, 'laptop', 'Work laptop');
  await checkpoint('age-the-proof');

  await page.goto(`${BASE}/me/add`);
  const confirm = page.getByRole('button', { name: 'Confirm with a key you already have' });
  await confirm.waitFor();
  await screenshot(page, 'add-confirm-first');
  await axeCheck(page, 'add-confirm-first');
  await auth.use('phone', 'hybrid');
  const refused = await add(page, 'phone', 'My phone', { expect: null });
  console.log(`adding without the key: ${refused}`);
  check(!/^Added/.test(refused), `refused without the key: ${refused}`);
  check(codes.includes('step_up_required'), `refused with step_up_required, got ${JSON.stringify(codes)}`);
  await checkpoint('refused');

  await auth.use('laptop', 'internal');
  await confirm.click();
  const confirmed = await settledStatus(page);
  check(/^Confirmed/.test(confirmed), `the laptop passkey confirms: ${confirmed}`);
  await auth.use('phone', 'hybrid');
  await add(page, 'phone', 'My phone');
});
