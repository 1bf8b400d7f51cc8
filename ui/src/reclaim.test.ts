import { describe, expect, it } from "vitest";
import { dom, softKey } from "./test-support";
import type { ReclaimedKey } from "./bindings/ReclaimedKey";
import { checkText, doneText, initialReclaimState, needsPin, reclaimSummary, renderReclaim, sentence } from "./reclaim-view";

const reset: ReclaimedKey = {
  directive: {
    id: "r1",
    key_id: "soft:aaaa1111",
    action: "reset",
    rp_id: "example.com",
    credential_ids: ["c1"],
    person_display_name: "Ada <Lovelace>",
    reason: "Ada Lovelace has left: this organisation-owned key is reset for reuse",
  },
  receipt: {
    directive_id: "r1",
    key_id: "soft:aaaa1111",
    action: "reset",
    outcome: "done",
    removed_credential_ids: ["c1"],
    remaining_credential_ids: [],
    detail: "factory reset; the check afterwards found no PIN and no credentials",
  },
  recorded: true,
};

const personalNoPin: ReclaimedKey = {
  directive: { ...reset.directive, id: "r2", key_id: "soft:bbbb2222", action: "delete_credentials", reason: "Ada has left: remove the organisation's credentials from their own key (it is not reset)" },
  receipt: {
    ...reset.receipt,
    directive_id: "r2",
    key_id: "soft:bbbb2222",
    action: "delete_credentials",
    outcome: "failed",
    removed_credential_ids: [],
    remaining_credential_ids: ["c2"],
    detail: "this is a personal key: it is never reset, and removing the organisation's credentials needs its PIN; ask its owner to type it",
  },
  recorded: false,
};

const key = softKey("soft:aaaa1111");

describe("what the station did", () => {
  it("names a reset, a personal key's credentials removed, and a fallback without reset", () => {
    expect(doneText(reset)).toMatch(/^Factory reset/);
    expect(checkText(reset)).toBe("No PIN and no passkeys left on the key.");
    const personal: ReclaimedKey = {
      ...personalNoPin,
      receipt: { ...personalNoPin.receipt, outcome: "done", removed_credential_ids: ["c2"], remaining_credential_ids: [] },
      recorded: true,
    };
    expect(doneText(personal)).toBe("The organisation's passkeys were removed (1 passkey); it is a personal key, so it was not reset.");
    expect(checkText(personal)).toBe("None of the organisation's passkeys left on the key.");
    const fallback: ReclaimedKey = { ...personal, directive: { ...personal.directive, action: "reset" } };
    expect(doneText(fallback)).toMatch(/could not be reset, so they were removed with its PIN/);
  });
  it("says when a personal key was left alone for want of its PIN", () => {
    expect(doneText(personalNoPin)).toBe("Not done.");
    expect(checkText(personalNoPin)).toBe("1 of the organisation's passkeys is still on the key.");
    expect(needsPin(personalNoPin)).toBe(true);
    expect(needsPin(reset)).toBe(false);
  });
  it("sums up", () => {
    expect(reclaimSummary([])).toMatch(/nothing to reclaim/);
    expect(reclaimSummary([reset])).toBe("1 key reclaimed, and the service recorded it.");
    expect(reclaimSummary([reset, { ...reset, directive: { ...reset.directive, id: "r3" } }])).toBe(
      "2 keys reclaimed, and the service recorded both.",
    );
    expect(reclaimSummary([reset, personalNoPin])).toBe("1 of 2 keys reclaimed and recorded; what stopped the other is below.");
    expect(reclaimSummary([personalNoPin])).toBe("The key was not reclaimed: what stopped it is below.");
    const waiting: ReclaimedKey = { ...reset, recorded: false, queued: true };
    const note = "wiped here, but the service could not be reached to record it: the receipt is kept on this laptop and sent when it can be.";
    expect(reclaimSummary([waiting])).toBe(`1 key was ${note}`);
    expect(reclaimSummary([waiting, { ...waiting, directive: { ...reset.directive, id: "r4" } }, reset])).toBe(
      `1 key reclaimed, and the service recorded it. 2 keys were ${note}`,
    );
    expect(reclaimSummary([{ ...personalNoPin, queued: true }])).toBe("The key was not reclaimed: what stopped it is below.");
    expect(reclaimSummary([personalNoPin, personalNoPin])).toMatch(/^None of the 2 keys was reclaimed/);
  });
  it("turns the agent's detail into a sentence", () => {
    expect(sentence("factory reset; done")).toBe("Factory reset; done.");
    expect(sentence("Done.")).toBe("Done.");
  });
});

describe("the reclaim view", () => {
  it("has a PIN field for personal keys and a button to run", () => {
    const d = dom(renderReclaim(initialReclaimState()));
    expect(d.querySelector("label[for=reclaim-pin]")?.textContent).toMatch(/personal key/);
    expect(d.getElementById("reclaim-run")?.textContent).toBe("Reclaim the keys plugged in");
    expect(d.getElementById("reclaim-summary")).toBeNull();
  });
  it("lists per key whose it was, what was done, the check and whether it was recorded", () => {
    const d = dom(renderReclaim({ ...initialReclaimState(), result: [reset, personalNoPin], keys: [key] }));
    const cards = Array.from(d.querySelectorAll("article.reclaimed"));
    expect(cards).toHaveLength(2);
    expect(cards[0].querySelector("h3")?.textContent).toContain("Key of Ada <Lovelace>");
    expect(cards[0].textContent).toContain("Keywarden software key (test/demo) · id aaaa1111");
    expect(cards[0].querySelector(".reclaim-recorded")?.textContent).toMatch(/^Yes/);
    expect(cards[0].querySelector(".badge")?.textContent).toBe("reclaimed");
    expect(cards[1].querySelector(".reclaim-recorded")?.textContent).toMatch(/^No/);
    expect(cards[1].querySelector(".badge")?.textContent).toBe("not reclaimed");
    expect(d.getElementById("reclaim-needs-pin")?.textContent).toMatch(/ask its owner to type it/);
  });
  it("shows the service's refusal on a laptop that is not a reclaim station, with its device id", () => {
    const d = dom(
      renderReclaim({
        ...initialReclaimState(),
        deviceId: "dev-123",
        error: { code: "not_a_reclaim_station", message: "This laptop is not an IT reclaim station, so it cannot reclaim keys. An admin can make it one.", retries_left: null },
      }),
    );
    const e = d.getElementById("reclaim-error");
    expect(e?.getAttribute("role")).toBe("alert");
    expect(e?.textContent).toContain("not an IT reclaim station");
    expect(e?.textContent).toContain("dev-123");
  });
  it("says when nothing was to be reclaimed", () => {
    const d = dom(renderReclaim({ ...initialReclaimState(), result: [] }));
    expect(d.getElementById("reclaim-summary")?.textContent).toMatch(/nothing to reclaim/);
  });
});
