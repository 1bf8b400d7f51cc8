// (c) Signed in as Ana, open Ben's enrolment link and add a passkey: it must never land on Ana
// (the Rust test checks Ana still has only "Ana laptop").
import { scenario, BASE, need, add, home, rows, check, firstOf, enrolWithTicket } from './lib.mjs';

await scenario(async ({ page }) => {
  const anaLaptop = { id: 'ana-laptop', transport: 'internal', what: 'laptop', name: 'Ana laptop' };
  const auth = await enrolWithTicket(page, anaLaptop);
  await home(page);

  await page.goto(`${BASE}/me/enrol#ticket=${need('KW_OTHER_TICKET')}`);
  await firstOf(
    page.waitForURL(/\/me\/add(\?|#|$)/),
    page.getByRole('alert').filter({ hasText: /\S/ }).waitFor(),
  );
  if (new URL(page.url()).pathname.startsWith('/me/add')) {
    await auth.use('second-laptop', 'internal');
    const outcome = await add(page, 'laptop', 'Second laptop', { expect: null });
    console.log(`adding with the second link: ${outcome}`);
    await page.goto(`${BASE}/me`);
    const who = await page.getByRole('navigation', { name: 'Account' }).innerText();
    check(/Signed in as ben\b/.test(who), `the browser now acts for Ben, whose link it was: ${who}`);
    const listed = await rows(page);
    check(
      !(listed.some((r) => r.includes('Ana laptop')) && listed.some((r) => r.includes('Second laptop'))),
      `one person's page lists both passkeys: ${listed}`,
    );
  } else {
    console.log(`the second link was refused: ${await page.getByRole('alert').innerText()}`);
  }
});

