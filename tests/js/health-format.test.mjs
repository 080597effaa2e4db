// Formats of the health page (static/dashboard/health/format.mjs), against the same table
// as the server's template filters (tests/dashboard/test_health_format.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as format from "../../static/dashboard/health/format.mjs";

const CASES = JSON.parse(readFileSync(new URL("../fixtures/health_format_cases.json", import.meta.url), "utf8"));
const FUNCTIONS = {
  utc_clock: format.utcClock,
  duration: format.duration,
  age: format.age,
  ms: format.ms,
  le_ms: format.leMs,
  pct: format.pct,
  mb: format.mb,
  dash: format.dash,
};

for (const [name, cases] of Object.entries(CASES)) {
  if (name.startsWith("_")) continue;
  test(`${name}: reads as the server's filter does`, () => {
    const fn = FUNCTIONS[name];
    assert.ok(fn, `no formatter for ${name}`);
    for (const [input, expected] of cases) assert.equal(fn(input), expected, JSON.stringify(input));
  });
}

test("every formatter has cases", () => {
  assert.deepEqual(Object.keys(FUNCTIONS).sort(), Object.keys(CASES).filter((k) => !k.startsWith("_")).sort());
});

test("utcClock: the same text whatever the process's time zone", () => {
  // The browser's zone must not matter: formatting only uses UTC fields.
  const at = "2025-06-30T22:15:00+02:00";
  assert.equal(format.utcClock(at), "20:15:00 UTC");
  assert.equal(format.parseIso(at), Date.parse(at));
});

test("parseIso: strict, where Date.parse rolls values over", () => {
  assert.ok(Number.isNaN(format.parseIso("2025-02-30T05:06:07Z")));
  assert.ok(!Number.isNaN(Date.parse("2025-02-30T05:06:07Z")));
  assert.equal(format.parseIso("0099-01-01T00:00:00Z"), Date.parse("0099-01-01T00:00:00Z"));
});

test("roundHalfEven and fixed1: exact halves go to even, as in Python", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -2.5, 2.4, 2.6].map(format.roundHalfEven), [0, 2, 2, -2, 2, 3]);
  assert.deepEqual([0.05, 0.25, 0.35, 0.75, 1.25].map(format.fixed1), ["0.1", "0.2", "0.3", "0.8", "1.2"]);
});
