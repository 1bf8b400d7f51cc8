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
  check((await replay.page.getByRole('heading', { name: 'Your sign-in methods' }).count()) === 0, 'nothing of the signed-in page shows');

  // The JSON API says the same to the old cookie.
  const api = await fetch(`${BASE.replace('//localhost', '//127.0.0.1')}/api/v1/me`, {
    headers: { cookie: `kw_session=${cookie.value}` },
  });
  const body = await api.json().catch(() => ({}));
  console.log(`GET /api/v1/me with the old cookie: ${api.status} ${body?.error?.code}`);
  check(api.status === 401 && body?.error?.code === 'session_unknown', 'the API refuses the old cookie with 401 session_unknown');
});
