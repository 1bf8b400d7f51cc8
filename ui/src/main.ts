import { invoke } from "@tauri-apps/api/core";
import type { KeyInfo } from "./bindings/KeyInfo";
import type { Posture } from "./bindings/Posture";
import { renderError, renderKeys, renderPosture } from "./view";

interface AppStatus {
  version: string;
  provisioned: boolean;
  server_url: string | null;
  device_id: string | null;
  outbox_pending: number;
  soft_keys_enabled: boolean;
}

function show(id: string, html: string) {
  const el = document.getElementById(id);
  if (el) {
    el.innerHTML = html;
    el.setAttribute("aria-busy", "false");
  }
}

async function load() {
  try {
    const s = await invoke<AppStatus>("app_status");
    const where = s.provisioned ? `Reporting to ${s.server_url}` : "This laptop is not provisioned yet";
    const soft = s.soft_keys_enabled ? " · software keys (test/demo) enabled" : "";
    const statusEl = document.getElementById("status");
    if (statusEl) statusEl.textContent = `${where} · ${s.outbox_pending} report(s) waiting · v${s.version}${soft}`;
  } catch (e) {
    show("status", renderError(e));
  }
  invoke<KeyInfo[]>("list_keys").then(
    (keys) => show("keys", renderKeys(keys)),
    (e) => show("keys", renderError(e)),
  );
  invoke<Posture>("posture").then(
    (p) => show("posture", renderPosture(p)),
    (e) => show("posture", renderError(e)),
  );
}

load();
