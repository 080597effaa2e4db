// Why a request failed, for people (static/telephony/call-button/reasons.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { cooldownMs, reasonFor, retryAfterSeconds, suggestsOutage } from "../../static/telephony/call-button/reasons.mjs";

const answer = (status, code, retryAfter = null) => ({ status, body: code ? { code } : null, retryAfter });

test("reasonFor: the table in docs/FRONTEND.md", () => {
  const table = [
    [answer(400, "invalid_number"), "that number is not valid"],
    [answer(400, "invalid_request"), "the request was refused"],
    [answer(401, "not_authenticated"), "your session has ended, log in again"],
    [answer(403, "destination_not_allowed"), "calls to this number are not allowed"],
    [answer(403, null), "the security check failed, reload the page"],
    [answer(404, "not_found"), "the call no longer exists"],
    [
      answer(409, "seat_limit"),
      "all telephony seats are taken by agents who are online, try again when one of them leaves",
    ],
    [answer(429, "rate_limited", "7"), "too many calls, try again in 7 s"],
    [answer(429, "rate_limited"), "too many calls, try again shortly"],
    [answer(502, "provider_error"), "the phone provider had a problem"],
    [answer(503, "service_unavailable"), "calls are unavailable right now"],
    [answer(504, "worker_timeout"), "telephony did not respond in time"],
    [answer(0, null), "network error, check your connection"],
    [answer(418, null), "something went wrong (HTTP 418)"],
  ];
  for (const [res, text] of table) assert.equal(reasonFor(res), text, String(res.status));
});

test("retryAfterSeconds and cooldownMs: Retry-After, else ten seconds", () => {
  assert.equal(retryAfterSeconds("12"), 12);
  assert.equal(retryAfterSeconds(null), 0);
  assert.equal(retryAfterSeconds("-3"), 0);
  assert.equal(retryAfterSeconds("soon"), 0);
  assert.equal(cooldownMs("3"), 3000);
  assert.equal(cooldownMs(null), 10000);
});

test("suggestsOutage: a 503 or no network re-reads the service state", () => {
  assert.equal(suggestsOutage(answer(503)), true);
  assert.equal(suggestsOutage(answer(0)), true);
  assert.equal(suggestsOutage(answer(504)), false);
});
