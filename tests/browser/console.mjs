// The console in Chromium: the first admin sets up with the one-time link and a security key,
// gives a help-desk role to a person from the HR feed (a fresh touch is asked for and given),
// starts a recovery for someone with no key left; the help-desk member signs in with their
// laptop's passkey, is refused the staff page, issues an enrolment ticket and approves the
// recovery; the admin previews a policy change's impact. Every page is checked with axe-core and photographed in the light and dark themes.
import {
  scenario, Authenticators, BASE, need, newPage, redeem, add, axeCheck, screenshot, check, checkpoint,
} from './lib.mjs';

await scenario(async ({ browser, page }) => {
  const failed = [];
  async function look(p, name) {
    for (const scheme of ['light', 'dark']) {
      await p.emulateMedia({ colorScheme: scheme });
      await screenshot(p, `console-${name}-${scheme}`);
      try {
        await axeCheck(p, `console ${name} (${scheme})`);
      } catch (e) {
        console.error(String(e));
        failed.push(`${name} (${scheme})`);
      }
    }
    await p.emulateMedia({ colorScheme: 'light' });
  }
  const status = (p) => p.locator('#status');

  // Hal, from the HR feed, adds his laptop's passkey with IT's enrolment link.
  const hal = await newPage(browser);
  const halAuth = await Authenticators.on(hal.page);
  await redeem(hal.page, need('KW_HAL_TICKET'));
  await halAuth.use('hal-laptop', 'internal');
  await add(hal.page, 'laptop', 'Hal laptop');

  // Signed out, the console sends you to sign in.
  await page.goto(`${BASE}/console`);
  await page.waitForURL(/\/console\/sign-in$/);
  await look(page, 'sign-in');

  // The first admin: the setup link from the service's data folder, and a security key.
  const auth = await Authenticators.on(page);
  await auth.use('rita-key', 'usb');
  await page.goto(need('KW_SETUP_LINK'));
  await page.getByRole('heading', { level: 1, name: 'Set up the console' }).waitFor();
  await look(page, 'setup');
  await page.getByLabel('Your user name (work email)').fill('rita@example.com');
  await page.getByLabel('Your name').fill('Rita Root');
  await page.getByRole('button', { name: 'Create my passkey' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  check(!page.url().includes('code='), `the setup code left the address bar: ${page.url()}`);
  await checkpoint('admin-ready');
  await look(page, 'overview');
  await page.goto(`${BASE}/console/people`);
  await look(page, 'people');
  // At 200 % zoom (half the width in CSS pixels) nothing needs a sideways scroll of the page.
  await page.setViewportSize({ width: 550, height: 800 });
  for (const path of ['/console', '/console/people', `/console/people/${need('KW_PAT')}`]) {
    await page.goto(`${BASE}${path}`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(wide <= 1, `${path} at 200 % zoom is ${wide} px wider than the window`);
  }
  await page.goto(`${BASE}/console`);
  await screenshot(page, 'console-overview-zoom-200');
  await page.setViewportSize({ width: 1100, height: 800 });

  // Rita gives Hal the help-desk role; her sign-in is no longer fresh, so she touches her key.
  await page.goto(`${BASE}/console/people/${need('KW_HAL')}`);
  await page.getByRole('heading', { level: 1, name: 'hal' }).waitFor();
  await look(page, 'person');
  await page.getByLabel('Role', { exact: true }).selectOption('helpdesk');
  await page.getByRole('button', { name: 'Grant', exact: true }).click();
  await page.getByText('staff role: helpdesk').waitFor();

  // Pat has no key left: Rita starts a recovery after proofing; two others must approve.
  await page.goto(`${BASE}/console/people/${need('KW_PAT')}`);
  await page.locator('#r-method').selectOption('hr_record_match');
  await page.locator('#r-detail').fill('badge photo matches the HR record');
  await page.getByRole('button', { name: 'Start recovery' }).click();
  await page.locator('#result').filter({ hasText: 'dual_approval' }).waitFor();
  await look(page, 'person-recovery');
  // And exempts her from the minimum while she waits (an exception, which expires).
  await page.getByLabel('Owner').fill('ciso@example.com');
  await page.getByLabel('Reason').fill('waiting for her recovery approvals');
  await page.getByLabel('Days').fill('7');
  await page.getByRole('button', { name: 'Grant exception' }).click();
  await page.locator('#hist').waitFor();
  await page.getByText('exception.granted').first().waitFor();
  await page.goto(`${BASE}/console/staff`);
  await look(page, 'staff');
  await page.goto(`${BASE}/console/laptops`);
  await page.locator('#laptops-table tbody tr').first().waitFor();
  await look(page, 'laptops');
  await page.locator('#laptops-table tbody tr a').first().click();
  await page.locator('#posture-history tbody tr').first().waitFor();
  await look(page, 'laptop');
  await page.goto(`${BASE}/console/keys`);
  await look(page, 'keys');
  await page.goto(`${BASE}/console/exceptions`);
  await page.locator('#exceptions-table').getByText('waiting for her recovery approvals').waitFor();
  await look(page, 'exceptions');
  await page.goto(`${BASE}/console/audit`);
  await page.locator('#chain').filter({ hasText: 'intact' }).waitFor();
  await look(page, 'audit');

  // Rita previews a policy change before saving it: one authenticator would do for "staff".
  await page.goto(`${BASE}/console/policy`);
  const definition = page.locator('#spec-staff');
  // The key-model picker writes the definition's allow-list: a model people hold, ticked, is in
  // it; an AAGUID typed by hand is added; unticked and cleared, the list is empty again.
  const models = page.locator('form:has(#spec-staff) fieldset[data-allow-list] input[type="checkbox"]');
  check((await models.count()) > 0, 'the picker offers the models people hold');
  const first = models.first();
  const aaguid = await first.getAttribute('value');
  await first.check();
  const allowed = () => definition.inputValue().then((t) => JSON.parse(t).policy.aaguid_allow_list);
  check(JSON.stringify(await allowed()) === JSON.stringify([aaguid]), `the ticked model is allowed: ${await allowed()}`);
  await page.locator('#other-staff').fill('EE882879-721C-4913-9775-3DFCCE97072A');
  check(
    JSON.stringify(await allowed()) === JSON.stringify([aaguid, 'ee882879-721c-4913-9775-3dfcce97072a']),
    `the typed AAGUID is allowed: ${await allowed()}`,
  );
  await look(page, 'policy-models');
  await first.uncheck();
  await page.locator('#other-staff').fill('');
  check((await allowed()).length === 0, `nothing ticked, nothing typed: any model: ${await allowed()}`);
  const spec = JSON.parse(await definition.inputValue());
  spec.policy.min_authenticators = 1;
  await definition.fill(JSON.stringify(spec, null, 2));
  await page.getByRole('button', { name: 'Preview impact' }).click();
  await page.locator('#result').filter({ hasText: 'Coming into compliance (1): hal@example.com' }).waitFor();
  await look(page, 'policy-preview');
  await checkpoint('previewed');
  // Then saves it (a policy change: a fresh touch is asked for and given).
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('At least 1 active authenticators').waitFor();

  // Hal signs in to the console with his laptop's passkey, by keyboard alone.
  await hal.page.goto(`${BASE}/console/sign-in`);
  let reached = false;
  for (let i = 0; i < 10 && !reached; i++) {
    await hal.page.keyboard.press('Tab');
    reached = await hal.page.evaluate(() => document.activeElement?.textContent === 'Sign in with a passkey');
  }
  check(reached, 'the sign-in button is reachable with Tab');
  await hal.page.keyboard.press('Enter');
  await hal.page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  // The staff list is for admins and auditors.
  const refused = await hal.page.goto(`${BASE}/console/staff`);
  check(refused.status() === 403, `the help desk reached the staff page: ${refused.status()}`);
  check((await status(hal.page).getAttribute('data-code')) === 'role_forbidden', 'refused as role_forbidden');
  await look(hal.page, 'refused');

  // Hal issues Pat an enrolment ticket and approves her recovery.
  await hal.page.goto(`${BASE}/console/people/${need('KW_PAT')}`);
  await hal.page.getByRole('button', { name: 'Issue ticket' }).click();
  await hal.page.locator('#result').filter({ hasText: '/me/enrol#ticket=' }).waitFor();
  const approval = hal.page.locator('#recoveries form');
  await approval.locator('select').selectOption('video_call_id_document');
  await approval.locator('input[name="proofing.detail"]').fill('passport on a video call');
  // The first answer may ask for a fresh touch; the script touches the key and sends it again.
  const approved = hal.page.waitForResponse(
    (r) => r.url().endsWith('/approvals') && r.request().method() === 'POST' && r.status() === 200,
  );
  await approval.getByRole('button', { name: 'Approve' }).click();
  await approved;
  await checkpoint('approved');

  // Signing out ends the session.
  await page.goto(`${BASE}/console`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/console\/sign-in$/);
  const again = await page.goto(`${BASE}/console`);
  check(again.url().endsWith('/console/sign-in'), 'signed out, the console asks to sign in again');
  check(failed.length === 0, `serious or critical accessibility violations on: ${failed.join(', ')}`);
});
