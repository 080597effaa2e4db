// The call's progress as the status region shows it (static/telephony/call-button/call-status.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  answeredAtMs,
  causeOf,
  clock,
  describeCall,
  movesForward,
  rankOf,
} from "../../static/telephony/call-button/call-status.mjs";

test("rankOf: known statuses in order, unknown ones (and Object members) undefined", () => {
  const order = ["queued", "dialing", "ringing", "answered", "completed"];
  const ranks = order.map(rankOf);
  assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b));
  assert.equal(rankOf("failed"), rankOf("completed"));
  assert.equal(rankOf("unknown"), rankOf("queued"));
  assert.equal(rankOf("busy"), undefined);
  assert.equal(rankOf("constructor"), undefined);
});

test("movesForward: never backwards, never the same status twice", () => {
  const answered = { status: "answered", rank: rankOf("answered") };
  assert.equal(movesForward(answered, "ringing"), false);
  assert.equal(movesForward(answered, "answered"), false);
  assert.equal(movesForward(answered, "completed"), true);
  assert.equal(movesForward({ status: "", rank: -1 }, "queued"), true);
  assert.equal(movesForward(null, "dialing"), true);
  assert.equal(movesForward({ status: "queued", rank: 0 }, "teleported"), false);
});

test("movesForward: a terminal status may still be replaced by the other terminal one", () => {
  // completed and failed share a rank; the widget is gone after the first, so this only
  // matters for early updates, where the later one wins.
  assert.equal(movesForward({ status: "completed", rank: 4 }, "failed"), true);
});

test("clock: m:ss, floored, never negative", () => {
  assert.equal(clock(0), "0:00");
  assert.equal(clock(5.9), "0:05");
  assert.equal(clock(65), "1:05");
  assert.equal(clock(3600), "60:00");
  assert.equal(clock(-3), "0:00");
  assert.equal(clock(undefined), "0:00");
});

test("causeOf: known codes for people, a normal hang-up says nothing, unknown ones as words", () => {
  assert.equal(causeOf({ hangup_cause: "user_busy" }), "the line is busy");
  assert.equal(causeOf({ error_code: "worker_timeout", hangup_cause: "normal_clearing" }), "telephony did not respond in time");
  assert.equal(causeOf({ hangup_cause: "normal_clearing" }), "");
  assert.equal(causeOf({ hangup_cause: "sip_603_decline" }), "sip 603 decline");
  assert.equal(causeOf({}), "");
  assert.equal(causeOf({ hangup_cause: "toString" }), "toString");
});

test("describeCall: every status has its text and widget state", () => {
  const cases = [
    [{ status: "queued" }, "Calling…", "calling"],
    [{ status: "dialing" }, "Calling…", "calling"],
    [{ status: "unknown" }, "Calling…", "calling"],
    [{ status: "ringing" }, "Ringing…", "ringing"],
    [{ status: "answered" }, "In call", "in-call"],
    [{ status: "completed", duration_seconds: 65 }, "Call ended after 1:05", "ended"],
    [{ status: "completed", duration_seconds: 0, hangup_cause: "originator_cancel" }, "Call ended", "ended"],
    [{ status: "completed", duration_seconds: 3, hangup_cause: "call_rejected" }, "Call ended after 0:03: the call was rejected", "ended"],
    [{ status: "failed", hangup_cause: "user_busy" }, "Call failed: the line is busy", "failed"],
    [{ status: "failed" }, "Call failed: unknown reason", "failed"],
  ];
  for (const [call, text, state] of cases) {
    const shown = describeCall(call);
    assert.equal(shown.text, text, call.status);
    assert.equal(shown.state, state, call.status);
  }
});

test("describeCall: only answered runs the timer; completed and failed are final", () => {
  assert.equal(describeCall({ status: "answered" }).timer, true);
  assert.equal(describeCall({ status: "ringing" }).timer, false);
  assert.equal(describeCall({ status: "completed" }).final, true);
  assert.equal(describeCall({ status: "failed" }).final, true);
  assert.equal(describeCall({ status: "answered" }).final, false);
});

test("describeCall: a failure after our own hang-up reads as cancelled", () => {
  const shown = describeCall({ status: "failed", hangup_cause: "originator_cancel" }, { hangingUp: true });
  assert.deepEqual([shown.text, shown.state], ["Call cancelled", "ended"]);
});

test("answeredAtMs: the server's time, never in the future, now when missing or unreadable", () => {
  const now = Date.parse("2025-01-01T12:00:10Z");
  assert.equal(answeredAtMs("2025-01-01T12:00:00Z", now), now - 10000);
  assert.equal(answeredAtMs("2025-01-01T12:05:00Z", now), now);
  assert.equal(answeredAtMs(null, now), now);
  assert.equal(answeredAtMs("yesterday-ish", now), now);
});
