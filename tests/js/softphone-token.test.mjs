// Token refresh without dropping a call (static/telephony/softphone/token.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseExpiry, refreshDelayMs, TokenKeeper } from "../../static/telephony/softphone/token.mjs";

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 0, 1); // the harness clock starts here; expiries are ISO 8601
const iso = (ms) => new Date(T0 + ms).toISOString();

test("refreshDelayMs: ten minutes before expiry", () => {
  assert.equal(refreshDelayMs(24 * HOUR, 0), 24 * HOUR - 10 * MIN);
  assert.equal(refreshDelayMs(21 * MIN, 0), 11 * MIN);
});

test("refreshDelayMs: a short-lived token is refreshed halfway; never a busy loop", () => {
  assert.equal(refreshDelayMs(10 * MIN, 0), 5 * MIN);
  assert.equal(refreshDelayMs(1000, 0), 1000); // min delay
  assert.equal(refreshDelayMs(-5000, 0), 1000); // already expired: soon, not in a loop
  assert.equal(refreshDelayMs(NaN, 0), null);
});

test("parseExpiry: ISO 8601, epoch seconds and ms", () => {
  assert.equal(parseExpiry("2026-01-01T00:00:00Z"), Date.UTC(2026, 0, 1));
  assert.equal(parseExpiry("2026-01-01T00:00:00+00:00"), Date.UTC(2026, 0, 1));
  assert.equal(parseExpiry(1_767_225_600), 1_767_225_600_000);
  assert.equal(parseExpiry(1_767_225_600_000), 1_767_225_600_000);
  assert.ok(Number.isNaN(parseExpiry("soon")));
  assert.ok(Number.isNaN(parseExpiry(undefined)));
});

// A fake client: login with a new token on the same object, counting anything else.
function harness({ fail = 0, expiresInMs = 30 * MIN } = {}) {
  const h = { now: T0, timers: [], logins: [], disconnects: 0, fetches: 0 };
  const client = {
    login: (token) => {
      h.logins.push(token);
      return Promise.resolve();
    },
    disconnect: () => {
      h.disconnects += 1;
    },
  };
  h.keeper = new TokenKeeper({
    now: () => h.now,
    setTimer: (fn, ms) => {
      h.timers.push({ fn, at: h.now + ms });
      return h.timers.length;
    },
    clearTimer: (id) => {
      h.timers[id - 1] = null;
    },
    fetchCredential: () => {
      h.fetches += 1;
      if (h.fetches <= fail) return Promise.reject(new Error("503"));
      return Promise.resolve({ token: "t" + h.fetches, expires_at: iso(h.now - T0 + expiresInMs) });
    },
    login: (token) => client.login(token),
  });
  // Run the next pending timer, jumping the clock to it.
  h.fire = async () => {
    const next = h.timers.filter(Boolean).sort((a, b) => a.at - b.at)[0];
    assert.ok(next, "a timer is pending");
    h.timers[h.timers.indexOf(next)] = null;
    h.now = next.at;
    next.fn();
    await h.keeper.inFlight;
  };
  h.pending = () => h.timers.filter(Boolean).map((t) => t.at - T0);
  return h;
}

test("TokenKeeper: refreshes 10 min ahead with login() on the same client, never a reconnect", async () => {
  const h = harness();
  h.keeper.start({ token: "t0", expires_at: iso(30 * MIN) });
  assert.deepEqual(h.pending(), [20 * MIN]);
  await h.fire();
  assert.equal(h.now - T0, 20 * MIN);
  assert.deepEqual(h.logins, ["t1"]);
  assert.equal(h.disconnects, 0);
  // The next one is planned from the new token's expiry (20 + 30 - 10 min).
  assert.deepEqual(h.pending(), [40 * MIN]);
});

test("TokenKeeper: TOKEN_EXPIRING_SOON is the backstop when the timer was late", async () => {
  const h = harness();
  h.keeper.start({ token: "t0", expires_at: iso(30 * MIN) });
  h.now = T0 + 28 * MIN; // the laptop slept through the timer
  await h.keeper.onExpiringSoon();
  assert.deepEqual(h.logins, ["t1"]);
  // A warning left over from the previous token does nothing.
  assert.equal(h.keeper.onExpiringSoon(), null);
  assert.deepEqual(h.logins, ["t1"]);
});

test("TokenKeeper: one refresh at a time", async () => {
  const h = harness();
  h.keeper.start({ token: "t0", expires_at: iso(30 * MIN) });
  h.now = T0 + 29 * MIN;
  const a = h.keeper.refresh("a");
  const b = h.keeper.onExpiringSoon();
  assert.equal(a, b);
  await a;
  assert.equal(h.fetches, 1);
});

test("TokenKeeper: a failed refresh is retried while the token lives", async () => {
  const h = harness({ fail: 2 });
  h.keeper.start({ token: "t0", expires_at: iso(30 * MIN) });
  await h.fire(); // 20 min: fails
  assert.deepEqual(h.logins, []);
  assert.deepEqual(h.pending(), [20 * MIN + 30_000]);
  await h.fire(); // fails again
  await h.fire(); // succeeds
  assert.deepEqual(h.logins, ["t3"]);
  assert.equal(h.disconnects, 0);
});

test("TokenKeeper: a credential without a token is a failure; stop() cancels", async () => {
  const h = harness();
  h.keeper.fetchCredential = () => Promise.resolve({ expires_at: iso(99 * MIN) });
  h.keeper.start({ token: "t0", expires_at: iso(30 * MIN) });
  assert.equal(await h.keeper.refresh("x"), false);
  assert.deepEqual(h.logins, []);
  h.keeper.stop();
  assert.deepEqual(h.pending(), []);
  assert.equal(await h.keeper.refresh("y"), false);
});
