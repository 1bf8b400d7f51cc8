// (d) In a population that needs two device classes, a laptop passkey alone is below policy;
// adding a phone passkey makes the person compliant, and the page says so.
import {
  scenario, add, home, checkpoint, screenshot, check, enrolWithTicket, LAPTOP,
} from './lib.mjs';

async function coverage(page) {
  return (await page.locator('#coverage').innerText()).trim();
}

await scenario(async ({ page }) => {
  const auth = await enrolWithTicket(page, LAPTOP);
  await home(page);
  const before = await coverage(page);
  check(/Below your organisation's policy/.test(before), `one class is below policy: ${before}`);
  await screenshot(page, 'home-below-policy');
  await checkpoint('one-class');

  await auth.use('phone', 'hybrid');
  await add(page, 'phone', 'My phone');
  await home(page);
  const after = await coverage(page);
  check(/Meets your organisation's policy/.test(after), `two classes meet policy: ${after}`);
  await screenshot(page, 'home-meets-policy');
});
