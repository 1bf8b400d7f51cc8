// (c) Someone who already has a key redeems a new enrolment link: the service wants that key
// first (step_up_required), says so on the page, and does not go on to the add page.
import { scenario, BASE, need, errorCodes, check } from './lib.mjs';

await scenario(async ({ page }) => {
  const codes = errorCodes(page);
  await page.goto(`${BASE}/me/enrol#ticket=${need('KW_TICKET')}`);
  const alert = page.getByRole('alert').filter({ hasText: /\S/ });
  await alert.waitFor();
  console.log(`page says: ${await alert.innerText()}`);
  await page.waitForTimeout(500); // let a wrong redirect to /me/add show itself
  check(new URL(page.url()).pathname === '/me/enrol', `stayed on the enrol page: ${page.url()}`);
  check(codes.includes('step_up_required'), `refused with step_up_required, got ${JSON.stringify(codes)}`);
});
