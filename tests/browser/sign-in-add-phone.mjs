// (b) Add a phone passkey after signing in with a key the person already has (the laptop
// passkey added through IT's link, in a fresh browser session).
import { scenario, Authenticators, need, redeem, add, home, signIn, newPage, row, rows, check } from './lib.mjs';

await scenario(async ({ browser, page }) => {
  const auth = await Authenticators.on(page);
  await redeem(page, need('KW_TICKET'));
  await auth.use('laptop', 'internal');
  await add(page, 'laptop', 'Work laptop');

  // A new browser session: nothing but the key proves who this is.
  const fresh = await newPage(browser);
  const auth2 = await auth.moveTo(fresh.page);
  await auth2.use('laptop', 'internal');
  await signIn(fresh.page);
  await auth2.use('phone', 'hybrid');
  await add(fresh.page, 'phone', 'My phone');
  await home(fresh.page);
  const phone = row(fresh.page, 'My phone');
  check((await phone.count()) === 1, `one "My phone" row: ${await rows(fresh.page)}`);
  check(/Phone passkey/.test(await phone.innerText()), `a phone passkey: ${await phone.innerText()}`);
});
