// The health page's freshness indicator and reconnect delays (static/dashboard/health/live.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { liveMode, nextBackoff, pollInterval, updatedText } from "../../static/dashboard/health/live.mjs";

test("liveMode: signed out beats failing beats live beats polling", () => {
  const all = { stopped: true, failing: true, socketOpen: true };
  assert.deepEqual(liveMode(all, 2500), { mode: "offline", text: "Signed out: reload the page" });
  assert.deepEqual(liveMode({ ...all, stopped: false }, 2500), {
    mode: "offline",
    text: "Cannot reach the server: retrying",
  });
  assert.deepEqual(liveMode({ socketOpen: true }, 2500), { mode: "live", text: "Live" });
  assert.deepEqual(liveMode({}, 2500), { mode: "polling", text: "Live updates down: polling every 2.5 s" });
});

test("updatedText: nothing before the first fetch, then its age", () => {
  assert.equal(updatedText(0, 5000), "");
  assert.equal(updatedText(1000, 3340), "updated 2.3 s ago");
});

test("nextBackoff: doubles up to 30 s", () => {
  const seen = [1000];
  while (seen.length < 7) seen.push(nextBackoff(seen.at(-1)));
  assert.deepEqual(seen, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
});

test("pollInterval: data-poll-ms, else 2.5 s", () => {
  assert.equal(pollInterval("1000"), 1000);
  assert.equal(pollInterval(null), 2500);
  assert.equal(pollInterval("0"), 2500);
});
