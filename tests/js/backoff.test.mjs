// WebSocket reconnect delays (static/telephony/call-button/backoff.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { nextBackoff, reconnectDelay } from "../../static/telephony/call-button/backoff.mjs";
import { config } from "../../static/telephony/call-button/config.mjs";

const MIDDLE = () => 0.5; // no jitter: the factor is 0.8 + 0.5 * 0.4 = 1
const cfg = { backoffMinMs: 1000, backoffMaxMs: 30000 };

test("nextBackoff: starts at the minimum and doubles up to the cap", () => {
  const seen = [];
  let delay = 0;
  for (let i = 0; i < 8; i++) {
    delay = nextBackoff(delay, cfg, MIDDLE);
    seen.push(delay);
  }
  assert.deepEqual(seen, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("nextBackoff: jitter stays within ±20 %", () => {
  assert.equal(nextBackoff(0, cfg, () => 0), 800);
  assert.equal(nextBackoff(0, cfg, () => 0.999999), 1200);
  assert.equal(nextBackoff(30000, cfg, () => 0), 24000);
  for (let i = 0; i < 200; i++) {
    const delay = nextBackoff(4000, cfg);
    assert.ok(delay >= 6400 && delay <= 9600, String(delay));
  }
});

test("reconnectDelay: a 4401 close (not logged in) waits the maximum at once", () => {
  assert.equal(reconnectDelay(0, 4401, cfg, MIDDLE), 30000);
  assert.equal(reconnectDelay(0, 1006, cfg, MIDDLE), 1000);
  assert.equal(reconnectDelay(2000, undefined, cfg, MIDDLE), 4000);
});

test("the documented defaults", () => {
  assert.deepEqual(
    { min: config.backoffMinMs, max: config.backoffMaxMs, ping: config.pingMs, pong: config.pongTimeoutMs },
    { min: 1000, max: 30000, ping: 20000, pong: 10000 }
  );
  assert.deepEqual(
    [config.statusPollMs, config.callPollMs, config.slowCallPollMs, config.requestTimeoutMs],
    [4000, 2000, 15000, 15000]
  );
});
