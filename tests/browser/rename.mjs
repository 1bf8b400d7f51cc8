// Name a passkey on the home page: the row shows the new name.
import { scenario, home, row, rows, check, enrolWithTicket, LAPTOP } from './lib.mjs';

await scenario(async ({ page }) => {
  await enrolWithTicket(page, LAPTOP);
  await home(page);
  const laptop = row(page, 'Work laptop');
  await laptop.getByLabel('New name').fill('Desk laptop');
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/name'));
  await laptop.getByRole('button', { name: 'Rename' }).click();
  const r = await answer;
  console.log(`rename: ${r.status()}`);
  check(r.status() < 400, `the rename is accepted; the page says: ${await page.locator('main').innerText()}`);
  await home(page);
  check((await row(page, 'Desk laptop').count()) === 1, `the row shows the new name: ${await rows(page)}`);
});
