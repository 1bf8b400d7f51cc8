import { describe, expect, it } from "vitest";
import type { KeyInfo } from "./bindings/KeyInfo";
import type { Posture } from "./bindings/Posture";
import { esc, renderCheckin, renderInventory, renderKeys, renderPosture, verdict } from "./view";

const softKey: KeyInfo = {
  id: "soft:abc",
  backend: "soft",
  label: "software key (test/demo)",
  model: "Keywarden software key (test/demo)",
  aaguid: "85e17f29-90da-40f7-8f3f-526b9449f38f",
  versions: ["FIDO_2_0", "FIDO_2_1"],
  extensions: [],
  options: { clientPin: true },
  pin_protocols: [2, 1],
  firmware_version: 1,
  pin_set: true,
  pin_retries: 8,
  min_pin_length: 4,
  force_pin_change: false,
  remaining_discoverable_credentials: 25,
};

const posture: Posture = {
  schema_version: 1,
  collected_at_ms: 0,
  os_name: { state: "known", value: "Debian GNU/Linux" },
  os_version: { state: "known", value: "12" },
  kernel_version: { state: "known", value: "6.1" },
  hostname: { state: "known", value: "laptop-7" },
  arch: { state: "known", value: "x86_64" },
  boot_time: { state: "known", value: 0 },
  disks: { state: "known", value: [] },
  disk_encryption: { state: "known", value: false, detail: "root on /dev/vda" },
  firewall: { state: "unknown", reason: "reading the nftables ruleset needs root" },
  secure_boot: { state: "known", value: true },
  last_os_update: { state: "known", value: 1796000000, detail: "libc6:amd64 upgraded, per /var/log/dpkg.log" },
  screen_lock: { state: "known", value: true, detail: "GNOME: blank after 300 s, locked 30 s later" },
  screen_lock_delay_secs: { state: "known", value: 330 },
  integrity_protection: { state: "unknown", reason: "OS integrity protection is not probed on linux" },
  app_verification: { state: "unknown", reason: "application verification is not probed on linux" },
  malware_protection: { state: "unknown", reason: "real-time malware protection is not probed on linux" },
  mdm_enrolled: { state: "unknown", reason: "MDM enrolment is not probed on linux" },
};

describe("key inventory", () => {
  it("labels the software key as a test/demo key", () => {
    const html = renderKeys([softKey]);
    expect(html).toContain("software key (test/demo)");
    expect(html).toContain("8 retries left");
  });
  it("says what to do when no key is found", () => {
    expect(renderKeys([])).toMatch(/No security key found.*udev rule/);
  });
  it("escapes what a key reports", () => {
    const html = renderKeys([{ ...softKey, backend: "hid", model: "<img src=x onerror=alert(1)>" }]);
    expect(html).not.toContain("<img");
    expect(html).not.toContain("software key (test/demo)</span>");
  });
});

describe("posture", () => {
  it("shows unknown with its reason, never a guess", () => {
    const html = renderPosture(posture);
    expect(html).toContain("reading the nftables ruleset needs root");
    expect(html).toMatch(/Firewall<\/th><td><span class="state-unknown">unknown/);
    expect(html).toContain("Last OS update</th><td></td><td>2026-11-30T00:53:20.000Z");
  });
  it("shows the screen lock and its delay, and a screen that never locks needs attention", () => {
    const html = renderPosture(posture);
    expect(html).toMatch(/Screen lock<\/th><td><span class="state-ok">ok/);
    expect(html).toContain("Screen locks after</th><td></td><td>330 s of inactivity");
    const never = renderPosture({
      ...posture,
      screen_lock: { state: "known", value: false, detail: "GNOME: screen lock disabled (lock-enabled false)" },
      screen_lock_delay_secs: { state: "unknown", reason: "the screen never locks by itself" },
    });
    expect(never).toMatch(/Screen lock<\/th><td><span class="state-attention">needs attention/);
    expect(never).toContain("the screen never locks by itself");
  });
  it("flags a disk that is not encrypted as needing attention", () => {
    expect(verdict(posture.disk_encryption)).toBe("attention");
    expect(verdict(posture.secure_boot)).toBe("ok");
    expect(verdict(posture.firewall)).toBe("unknown");
  });
  it("escapes html", () => {
    expect(esc(`<a href="x">&'`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  });
});

describe("inventory and check-in", () => {
  it("shows the key's own PIN policy", () => {
    const html = renderKeys([{ ...softKey, force_pin_change: true, options: { alwaysUv: true } }]);
    expect(html).toContain("yes, before next use");
    expect(html).toContain("yes (alwaysUv)");
  });
  it("says why no key is found and how to fix it", () => {
    const html = renderInventory({
      keys: [],
      findings: [{ code: "not_active_seat", problem: "your session is not active", fix: "switch to your session" }],
    });
    expect(html).toContain(`data-code="not_active_seat"`);
    expect(html).toContain("switch to your session");
    expect(renderInventory({ keys: [softKey], findings: [] })).not.toContain("Why no key is found");
  });
  const base = {
    last_attempt_at_ms: null,
    last_success_at_ms: null,
    last_error: null,
    last_trigger: null,
    outbox_pending: 0,
    interval_seconds: 3600,
  };
  it("says when nothing was reported yet, and how often it reports", () => {
    const html = renderCheckin(base);
    expect(html).toContain("No report has been sent from this laptop yet.");
    expect(html).toContain("every 60 minutes");
  });
  it("shows a failed check-in and what waits in the outbox", () => {
    const html = renderCheckin({ ...base, last_attempt_at_ms: 1, last_error: "cannot reach the service", outbox_pending: 3 });
    expect(html).toContain("failed: cannot reach the service");
    expect(html).toContain("3 reports waiting to be sent (kept across restarts).");
    expect(html).toContain(`class="warning"`);
  });
});

describe("changing a key's PIN from the key list", () => {
  it("offers the form on a key with a PIN, with its minimum, and says when the key asks for it", () => {
    const doc = new DOMParser().parseFromString(
      renderKeys([{ ...softKey, pin_set: true, min_pin_length: 8, force_pin_change: true }]),
      "text/html",
    );
    const form = doc.querySelector("form.pin-change") as HTMLFormElement;
    expect(form.dataset.min).toBe("8");
    expect(form.textContent).toContain("This key asks for a new PIN before it can be used.");
    expect(form.textContent).toContain("at least 8 characters");
    for (const input of Array.from(form.querySelectorAll("input"))) {
      expect(doc.querySelector(`label[for="${input.id}"]`)).not.toBeNull();
    }
    // A key without a PIN has nothing to change.
    expect(renderKeys([{ ...softKey, pin_set: false }])).not.toContain("pin-change");
  });
});
