// The service state as the page shows it (static/telephony/call-button/service-status.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  announcement,
  healthFromStatusAnswer,
  serviceLabel,
  serviceStatus,
} from "../../static/telephony/call-button/service-status.mjs";

test("serviceLabel: every state word of the design, unknown words as they are", () => {
  const words = ["starting", "ready", "degraded", "unavailable", "failed", "stopped"];
  assert.deepEqual(words.map(serviceLabel), ["Starting…", "Ready", "Degraded", "Unavailable", "Failed", "Stopped"]);
  assert.equal(serviceLabel("rebooting"), "rebooting");
  assert.equal(serviceLabel("hasOwnProperty"), "hasOwnProperty");
});

test("serviceStatus: the word given, else what healthy implies", () => {
  assert.equal(serviceStatus(true, "degraded"), "degraded");
  assert.equal(serviceStatus(true, ""), "ready");
  assert.equal(serviceStatus(false, undefined), "unavailable");
});

test("announcement: once per change, never for the first reading or without live buttons", () => {
  assert.equal(announcement(null, true), "");
  assert.equal(announcement(null, false), "");
  assert.equal(announcement(true, true), "");
  assert.equal(announcement(true, false), "Calling is unavailable right now.");
  assert.equal(announcement(false, true), "Calling is available again.");
  assert.equal(announcement(true, false, { liveButtons: false }), "");
});

test("healthFromStatusAnswer: the answer's healthy; anything else counts as unavailable", () => {
  assert.deepEqual(healthFromStatusAnswer({ status: 200, body: { healthy: true, status: "ready" } }), {
    healthy: true,
    status: "ready",
  });
  assert.deepEqual(healthFromStatusAnswer({ status: 503, body: { healthy: false, status: "failed" } }), {
    healthy: false,
    status: "failed",
  });
  for (const res of [{ status: 0, body: null }, { status: 502, body: { error: "x" } }, { status: 200, body: { healthy: "yes" } }]) {
    assert.deepEqual(healthFromStatusAnswer(res), { healthy: false, status: "unavailable" });
  }
});
