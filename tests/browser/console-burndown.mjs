// The console's overview after several simulated days (the service test
// crates/server/tests/console_browser.rs moved its clock and took a snapshot each day): the
// first admin sets up with a security key, and the burn-down shows four days, falling.
import { scenario, Authenticators, need, axeCheck, screenshot, check } from './lib.mjs';

await scenario(async ({ page }) => {
  const auth = await Authenticators.on(page);
  await auth.use('admin-key', 'usb');
  await page.goto(need('KW_SETUP_LINK'));
  await page.getByLabel('Your user name (work email)').fill('root@example.com');
  await page.getByLabel('Your name').fill('Root Admin');
  await page.getByRole('button', { name: 'Create my passkey' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  const chart = page.locator('svg.chart');
  check((await chart.getAttribute('data-days')) === '4', 'the chart draws four days');
  const below = await page.locator('svg.chart rect.below').evaluateAll((bars) =>
    bars.map((b) => Number(b.getAttribute('data-below'))),
  );
  check(below.length === 4 && below[3] < below[0], `fewer people below policy on the last day: ${below}`);
  const title = await page.locator('#burn-title').textContent();
  check(/then, \d+ now/.test(title ?? ''), `the chart says the trend: ${title}`);
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await screenshot(page, `console-burndown-${scheme}`);
    await axeCheck(page, `console burn-down (${scheme})`);
  }
});
