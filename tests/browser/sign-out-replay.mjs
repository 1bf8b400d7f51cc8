// (g) Sign out, then replay the old session cookie in a fresh browser: the sign-in page, not
// the person's page.
import { scenario, Authenticators, newPage, BASE, need, redeem, add, home, signOut, check } from './lib.mjs';

await scenario(async ({ browser, context, page }) => {
  const auth = await Authenticators.on(page);
  await redeem(page, need('KW_TICKET'));
  await auth.use('laptop', 'internal');
  await add(page, 'laptop', 'Work laptop');
  await home(page);
  const cookie = (await context.cookies(BASE)).find((c) => c.name === 'kw_session');
  check(cookie, 'a kw_session cookie is set');
  check(cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict' && cookie.path === '/',
    `kw_session is HttpOnly, Secure, SameSite=Strict, Path=/: ${JSON.stringify({ ...cookie, value: '…' })}`);

  await signOut(page);

  const replay = await newPage(browser);
  await replay.context.addCookies([cookie]);
  await replay.page.goto(`${BASE}/me`);
  await replay.page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  check((await replay.page.getByText('Your sign-in methods').count()) === 0, 'nothing of the signed-in page shows');
});
