// Nothing may throw into the host page (static/telephony/call-button/guard.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { guard, later } from "../../static/telephony/call-button/guard.mjs";

test("guard: an error is logged with the [telephony] prefix and swallowed", (t) => {
  const warn = t.mock.method(console, "warn", () => {});
  const boom = guard(() => {
    throw new Error("boom");
  });
  assert.equal(boom(), undefined);
  assert.equal(warn.mock.callCount(), 1);
  assert.match(warn.mock.calls[0].arguments[0], /^\[telephony\] /);
});

test("guard: passes arguments, this and the result through", () => {
  const obj = { n: 2, times: guard(function (k) { return this.n * k; }) };
  assert.equal(obj.times(21), 42);
});

test("later: a throwing timer callback is guarded too", { timeout: 5000 }, async (t) => {
  const warn = t.mock.method(console, "warn", () => {});
  await new Promise((resolve) => {
    later(() => {
      resolve();
      throw new Error("late boom");
    }, 0);
  });
  // resolve() ran before the throw; wait until the guard has logged it.
  while (warn.mock.callCount() === 0) await new Promise((r) => setImmediate(r));
  assert.equal(warn.mock.callCount(), 1);
});
