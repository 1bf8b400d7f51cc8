function parseApi(spec) {
  const m = /^(POST|PUT|DELETE) (\/api\/v1\/[A-Za-z0-9/_-]+)$/.exec(spec ?? "");
  return m ? { method: m[1], path: m[2] } : null;
}
function formBody(fields) {
  const body = {};
  for (const [name, value] of fields) {
    const parts = name.split(".");
    let at = body;
    for (const p of parts.slice(0, -1)) {
      const next = at[p];
      if (typeof next === "object" && next !== null) {
        at = next;
      } else {
        const made = {};
        at[p] = made;
        at = made;
      }
    }
    at[parts[parts.length - 1]] = value;
  }
  return body;
}
class ServiceError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}
function serviceError(status, body) {
  const e = body?.error;
  if (e && typeof e.code === "string" && typeof e.message === "string") {
    return new ServiceError(e.code, e.message);
  }
  return new ServiceError(`http_${status}`, `the service answered ${status}`);
}
function wantsTouch(e) {
  return e instanceof ServiceError && e.code === "fresh_touch_required";
}
function messageOf(e) {
  if (e instanceof ServiceError) return e.message;
  const name = e?.name;
  if (name === "NotAllowedError") return "The request was cancelled or timed out. Try again.";
  if (name === "InvalidStateError") return "This authenticator already holds a passkey here.";
  return String(e?.message ?? e);
}
const csrf = () => document.querySelector('meta[name="kw-csrf"]')?.getAttribute("content") ?? "";
function say(text, kind = "info") {
  const el = document.getElementById("status");
  if (!el) return;
  el.textContent = text;
  el.dataset.kind = kind;
}
async function call(method, path, body) {
  const res = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-keywarden-csrf": csrf() },
    body: method === "DELETE" ? void 0 : JSON.stringify(body ?? {})
  });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw serviceError(res.status, data);
  return data;
}
async function assertWith(path) {
  const ch = await call("POST", `${path}/begin`);
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(
    ch.public_key
  );
  const credential = await navigator.credentials.get({ publicKey });
  return call("POST", `${path}/finish`, { challenge_id: ch.challenge_id, credential: credential.toJSON() });
}
async function signIn() {
  try {
    say("Touch your key, or confirm on your device…");
    await assertWith("/api/v1/me/sign-in");
    location.assign("/console");
  } catch (e) {
    say(messageOf(e), "error");
  }
}
async function setup(form) {
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (!code) {
    say("This page needs the setup link the service wrote at its first start.", "error");
    return;
  }
  const fields = new FormData(form);
  try {
    const ch = await call("POST", "/api/v1/console/setup/begin", {
      code,
      user_name: String(fields.get("user_name") ?? ""),
      display_name: String(fields.get("display_name") ?? "")
    });
    say("Touch your key, or confirm on your device…");
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(
      ch.public_key
    );
    const credential = await navigator.credentials.create({ publicKey });
    await call("POST", "/api/v1/console/setup/finish", {
      challenge_id: ch.challenge_id,
      credential: credential.toJSON()
    });
    history.replaceState(null, "", location.pathname);
    location.assign("/console");
  } catch (e) {
    say(messageOf(e), "error");
  }
}
async function act(form, button) {
  const api = parseApi(button?.dataset.api ?? form.dataset.api);
  if (!api) return;
  const fields = [];
  new FormData(form).forEach((v, k) => fields.push([k, String(v)]));
  let body;
  const json = form.dataset.json;
  if (json) {
    try {
      body = JSON.parse(String(new FormData(form).get(json) ?? ""));
    } catch (e) {
      say(`The definition is not valid JSON: ${messageOf(e)}`, "error");
      return;
    }
  } else {
    body = formBody(fields);
  }
  let answer;
  try {
    try {
      answer = await call(api.method, api.path, body);
    } catch (e) {
      if (!wantsTouch(e)) throw e;
      say("This action needs a fresh touch: touch your key, or confirm on your device…");
      await assertWith("/api/v1/me/step-up");
      answer = await call(api.method, api.path, body);
    }
  } catch (e) {
    say(messageOf(e), "error");
    return;
  }
  done(button?.dataset.done ?? form.dataset.done, answer);
}
function done(what, answer) {
  const out = document.getElementById("result");
  const a = answer ?? {};
  if (what === "show-link" && out) {
    out.textContent = `Enrolment link for the person (works once, until ${new Date(Number(a.expires_at_ms)).toISOString()}; send it over a channel you trust; it is not shown again):
${String(a.web_link ?? a.secret)}`;
    say("Ticket issued.");
  } else if (what === "show-recovery" && out) {
    const r = a.recovery ?? a;
    out.textContent = `Recovery ${String(r.id ?? "")} started (${String(r.kind ?? "")}). Recovery ticket for the person (shown once): ${String(a.ticket ?? "")}`;
    say("Recovery started.");
  } else if (what === "show-preview" && out) {
    const names = (list) => (list ?? []).map((c) => `${c.user_name} (${c.after.replace(/_/g, " ")})`).join(", ") || "nobody";
    out.textContent = `If saved: ${String(a.compliant_now)} people meet their policy now, ${String(a.compliant_after)} after.
Falling out of compliance (${String(a.falling_out_count)}): ${names(a.falling_out)}
Coming into compliance (${String(a.coming_in_count)}): ${names(a.coming_in)}
Nothing was saved.`;
    say("Impact previewed; nothing was saved.");
  } else {
    location.reload();
  }
}
function theme(button, set) {
  const root = document.documentElement;
  if (set === "dark" || set === "light") root.dataset.theme = set;
  const dark = root.dataset.theme ? root.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  button.setAttribute("aria-pressed", String(dark));
}
function start() {
  const themeButton = document.querySelector('[data-action="theme"]');
  if (themeButton) {
    const saved = localStorage.getItem("kw-theme") ?? void 0;
    theme(themeButton, saved);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => theme(themeButton));
    themeButton.addEventListener("click", () => {
      const next = themeButton.getAttribute("aria-pressed") === "true" ? "light" : "dark";
      localStorage.setItem("kw-theme", next);
      theme(themeButton, next);
    });
  }
  document.querySelector('[data-action="sign-in"]')?.addEventListener("click", () => void signIn());
  const setupForm = document.querySelector('form[data-action="setup"]');
  setupForm?.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void setup(setupForm);
  });
  document.querySelectorAll("form[data-api]").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void act(form, ev.submitter);
    });
  });
}
start();
export {
  ServiceError
};
