// Updates that beat the POST's answer (static/telephony/call-button/early.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { EarlyUpdates } from "../../static/telephony/call-button/early.mjs";

function withClock() {
  const clock = { now: 1000 };
  return [new EarlyUpdates({ now: () => clock.now }), clock];
}

test("EarlyUpdates: keeps the most advanced update per call, taken once", () => {
  const [early] = withClock();
  early.remember({ id: 7, status: "ringing" });
  early.remember({ id: 7, status: "dialing" }); // late and behind: ignored
  assert.deepEqual(early.take("7"), { id: 7, status: "ringing" });
  assert.equal(early.take(7), null);
});

test("EarlyUpdates: forgets updates older than a minute", () => {
  const [early, clock] = withClock();
  early.remember({ id: 1, status: "ringing" });
  clock.now += 60001;
  early.remember({ id: 2, status: "answered" });
  assert.equal(early.size, 1);
  assert.equal(early.take(1), null);
});
