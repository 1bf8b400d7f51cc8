// (b) Add a phone passkey after signing in with a key: the security key the person enrolled
// with the desktop app answers from a virtual USB authenticator; after signing in with it the
// person adds a phone passkey (hybrid).
import {
  scenario, Authenticators, need, add, signIn, home, row, rows, softKeyCredential, check,
} from './lib.mjs';

await scenario(async ({ page }) => {
  const auth = await Authenticators.on(page);
  await auth.use('key', 'usb');
  await auth.addCredential(softKeyCredential(JSON.parse(need('KW_KEY_CREDENTIAL'))));
  await signIn(page);
  const key = await row(page, 'Software key').innerText();
  check(/You signed in with this one/.test(key), `the key's row says it signed in: ${key}`);

  await auth.use('phone', 'hybrid');
  await add(page, 'phone', 'My phone');
  await home(page);
  const phone = row(page, 'My phone');
  check((await phone.count()) === 1, `one "My phone" row: ${await rows(page)}`);
  check(/Phone passkey/.test(await phone.innerText()), `a phone passkey: ${await phone.innerText()}`);
});
