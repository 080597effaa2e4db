// The softphone's state machine, DTMF keys and the call timer
// (static/telephony/softphone/state.mjs, dtmf.mjs, timer.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { isDtmfKey, KEYPAD, keyFromKeyboard, parseDtmf } from "../../static/telephony/softphone/dtmf.mjs";
import { ERRORS, errorText, PhoneState } from "../../static/telephony/softphone/state.mjs";
import { elapsedSeconds, formatDuration, spokenDuration } from "../../static/telephony/softphone/timer.mjs";

function run(machine, events) {
  for (const e of events) machine.send(...(Array.isArray(e) ? e : [e]));
  return machine.state;
}

test("state: a call from start to end and back to ready", () => {
  const seen = [];
  const m = new PhoneState({ onChange: (s) => seen.push(s) });
  run(m, ["start", "loaded", "ready", "invite", "answer", "active", "hold", "unhold", "end", "reset"]);
  assert.deepEqual(seen, ["loading", "logging-in", "ready", "ringing", "answering", "active", "held", "active", "ended", "ready"]);
});

test("state: events that do not apply are ignored, not thrown", () => {
  const m = new PhoneState();
  assert.equal(m.send("answer"), false);
  assert.equal(m.send("nonsense"), false);
  assert.equal(m.state, "idle");
  run(m, ["start", "loaded", "ready"]);
  assert.equal(m.send("hold"), false);
  assert.equal(m.state, "ready");
});

test("state: each failure before a call is an error with its code and one line", () => {
  for (const [events, code] of [
    [[], "webrtc_missing"],
    [["start"], "sdk_load_failed"],
    [["start", "loaded"], "login_failed"],
    [["start", "loaded", "ready"], "service_down"],
  ]) {
    const m = new PhoneState();
    run(m, [...events, ["fail", { code }]]);
    assert.equal(m.state, "error");
    assert.deepEqual(m.error, { code, text: ERRORS[code] });
    assert.match(m.error.text, /^Calls unavailable/);
    assert.equal(m.error.text.includes("\n"), false);
  }
  assert.equal(errorText("no_such_code"), ERRORS.unexpected);
});

test("state: a failure during a call never ends it; it applies when the call ends", () => {
  const m = new PhoneState();
  run(m, ["start", "loaded", "ready", "invite", "answer", "active"]);
  assert.equal(m.send("fail", { code: "login_failed" }), false);
  assert.equal(m.send("disconnected"), false); // socket loss: the call is kept
  assert.equal(m.state, "active");
  m.send("end");
  assert.equal(m.state, "error");
  assert.equal(m.error.code, "login_failed");
});

test("state: a socket loss while idle logs in again; a failed login can be retried", () => {
  const m = new PhoneState();
  assert.equal(run(m, ["start", "loaded", "ready", "disconnected"]), "logging-in");
  assert.equal(run(m, ["ready"]), "ready");
  assert.equal(run(m, [["fail", { code: "login_failed" }], "start", "loaded", "ready"]), "ready");
  assert.equal(m.error, null);
});

test("dtmf: the twelve keys (and A-D) only", () => {
  assert.deepEqual(KEYPAD.flat().map(([d]) => d).join(""), "123456789*0#");
  for (const k of "0123456789*#ABCDabcd") assert.equal(isDtmfKey(k), true, k);
  for (const k of ["", "12", "E", "+", " ", null, 5, "１"]) assert.equal(isDtmfKey(k), false, String(k));
});

test("dtmf: typed digits are cleaned or refused with a code", () => {
  assert.deepEqual(parseDtmf("123-456 #"), { digits: "123456#" });
  assert.deepEqual(parseDtmf("1a"), { digits: "1A" });
  assert.deepEqual(parseDtmf("12x"), { error: "invalid_dtmf" });
  assert.deepEqual(parseDtmf("  "), { error: "empty_dtmf" });
  assert.deepEqual(parseDtmf("1".repeat(33)), { error: "too_many_digits" });
  assert.deepEqual(parseDtmf(undefined), { error: "invalid_dtmf" });
  assert.equal(keyFromKeyboard("7"), "7");
  assert.equal(keyFromKeyboard("#"), "#");
  assert.equal(keyFromKeyboard("Enter"), "");
  assert.equal(keyFromKeyboard("a"), "");
});

test("timer: m:ss, then h:mm:ss; spoken form; never negative", () => {
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(9.9), "0:09");
  assert.equal(formatDuration(61), "1:01");
  assert.equal(formatDuration(3599), "59:59");
  assert.equal(formatDuration(3600), "1:00:00");
  assert.equal(formatDuration(36061), "10:01:01");
  assert.equal(formatDuration(-5), "0:00");
  assert.equal(formatDuration(NaN), "0:00");
  assert.equal(spokenDuration(0), "0 seconds");
  assert.equal(spokenDuration(61), "1 minute 1 second");
  assert.equal(spokenDuration(7320), "2 hours 2 minutes");
  assert.equal(elapsedSeconds(5000, 4000), 0);
  assert.equal(elapsedSeconds(1000, 4000), 3);
});
