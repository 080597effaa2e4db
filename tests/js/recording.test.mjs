// The recording indicator and on-demand toggle (static/telephony/call-button/recording.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { policyOf, recordingFailure, recordingView } from "../../static/telephony/call-button/recording.mjs";
import { recordingAddress } from "../../static/telephony/call-button/urls.mjs";

const call = (status, recording = false) => ({ id: "c1", status, recording });
const answer = (status, code, retryAfter = null) => ({ status, body: code ? { code } : null, retryAfter });

test("policyOf: only the three policies; anything else is off", () => {
  for (const p of ["off", "all", "on_demand"]) assert.equal(policyOf(p), p);
  for (const p of [null, "", "ALL", "on-demand", undefined]) assert.equal(policyOf(p), "off");
});

test("the indicator follows the call's flag under every policy", () => {
  for (const policy of ["off", "all", "on_demand"]) {
    assert.equal(recordingView(policy, call("answered", true)).indicator, true, policy);
    assert.equal(recordingView(policy, call("answered", false)).indicator, false, policy);
  }
  assert.equal(recordingView("all", null).indicator, false);
});

test("the toggle is offered under on_demand while answered only", () => {
  for (const status of ["queued", "dialing", "ringing", "completed", "failed"]) {
    assert.equal(recordingView("on_demand", call(status)).toggle, false, status);
  }
  assert.equal(recordingView("on_demand", call("answered")).toggle, true);
  assert.equal(recordingView("all", call("answered")).toggle, false);
  assert.equal(recordingView("off", call("answered")).toggle, false);
});

test("the toggle's label, aria-pressed and pending state", () => {
  const idle = recordingView("on_demand", call("answered", false));
  assert.deepEqual([idle.label, idle.pressed, idle.disabled], ["Record", false, false]);
  const on = recordingView("on_demand", call("answered", true));
  assert.deepEqual([on.label, on.pressed, on.disabled], ["Stop recording", true, false]);
  const starting = recordingView("on_demand", call("answered", false), { pending: true });
  assert.deepEqual([starting.label, starting.disabled], ["Starting…", true]);
  const stopping = recordingView("on_demand", call("answered", true), { pending: true });
  assert.deepEqual([stopping.label, stopping.disabled], ["Stopping…", true]);
});

test("an unavailable service disables the toggle and says why", () => {
  const down = recordingView("on_demand", call("answered"), { available: false });
  assert.equal(down.disabled, true);
  assert.match(down.note, /calls are unavailable/);
  assert.equal(recordingView("on_demand", call("ringing"), { available: false }).note, "");
});

test("recordingFailure: the API's codes in words, else the call button's reasons", () => {
  const table = [
    [true, answer(409, "call_not_answered"), "Could not start recording: the call is not in progress"],
    [false, answer(409, "recording_disabled"), "Could not stop recording: recording cannot be switched on or off here"],
    [true, answer(404, "not_found"), "Could not start recording: the call no longer exists"],
    [true, answer(502, "provider_error"), "Could not start recording: the phone provider had a problem"],
    [true, answer(429, "rate_limited", "5"), "Could not start recording: too many calls, try again in 5 s"],
    [false, answer(0, null), "Could not stop recording: network error, check your connection"],
  ];
  for (const [wanted, res, text] of table) assert.equal(recordingFailure(wanted, res), text);
});

test("recordingAddress", () => {
  assert.equal(recordingAddress("/api/webrtc/call", "a b"), "/api/webrtc/call/a%20b/recording");
});
