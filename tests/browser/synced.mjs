// (e) A synced (backup-eligible) laptop passkey: refused where the population does not allow
// synced passkeys, accepted and shown as synced where it does.
import { scenario, Authenticators, newPage, need, redeem, add, home, row, errorCodes, checkpoint, check } from './lib.mjs';

await scenario(async ({ browser, page }) => {
  const codes = errorCodes(page);
  const auth = await Authenticators.on(page);
  await redeem(page, need('KW_TICKET'));
  await auth.use('synced-laptop', 'internal', { synced: true });
  await checkpoint('before-synced');
  const refused = await add(page, 'laptop', 'Synced laptop', { expect: null });
  console.log(`strict population: ${refused}`);
  check(!/Added/.test(refused), `refused, not added: ${refused}`);
  check(codes.includes('synced_passkey_not_allowed'), `code synced_passkey_not_allowed, got ${JSON.stringify(codes)}`);
  await checkpoint('synced-refused');

  const other = await newPage(browser);
  const auth2 = await auth.moveTo(other.page);
  await redeem(other.page, need('KW_OTHER_TICKET'));
  await auth2.use('synced-laptop', 'internal', { synced: true });
  await add(other.page, 'laptop', 'Synced laptop');
  await home(other.page);
  const text = await row(other.page, 'Synced laptop').innerText();
  check(/Laptop passkey/.test(text) && /synced/i.test(text), `listed as a synced laptop passkey: ${text}`);
});
