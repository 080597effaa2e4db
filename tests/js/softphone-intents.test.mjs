// Which invites the page answers by itself (static/telephony/softphone/intents.mjs and
// client-state.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { decodeClientState, encodeClientState } from "../../static/telephony/softphone/client-state.mjs";
import { ANSWER, ELSEWHERE, Intents, RING, WAIT } from "../../static/telephony/softphone/intents.mjs";

const ID = "6f1c0f3e-2a4b-4c1d-9e8f-0123456789ab";
const b64 = (obj) => Buffer.from(typeof obj === "string" ? obj : JSON.stringify(obj)).toString("base64");

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

test("client_state: the worker's base64 JSON decodes to {call, leg}", () => {
  assert.deepEqual(decodeClientState(b64({ call: ID, leg: "agent" })), { call: ID, leg: "agent" });
  assert.deepEqual(decodeClientState(encodeClientState(ID)), { call: ID, leg: "agent" });
  // URL-safe alphabet and missing padding are accepted too.
  const urlSafe = b64({ call: "a?>~", leg: "agent" }).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  assert.deepEqual(decodeClientState(urlSafe), { call: "a?>~", leg: "agent" });
});

test("client_state: anything else is not ours, and never throws", () => {
  for (const raw of [
    undefined,
    null,
    "",
    42,
    "not base64 !!!",
    b64("not json"),
    b64([ID]),
    b64({ leg: "agent" }),
    b64({ call: 7, leg: "agent" }),
    b64({ call: "x".repeat(101) }),
    "A".repeat(5000),
  ]) {
    assert.equal(decodeClientState(raw), null, String(raw));
  }
});

test("intents: an invite for the call this page asked for is answered, once", () => {
  const c = clock();
  const intents = new Intents({ now: c.now });
  const token = intents.begin();
  intents.settle(token, ID);
  assert.equal(intents.classify(encodeClientState(ID)), ANSWER);
  intents.consume(ID);
  assert.equal(intents.classify(encodeClientState(ID)), RING);
});

test("intents: an invite that matches no pending call rings, never answers", () => {
  const intents = new Intents({ now: clock().now });
  intents.settle(intents.begin(), ID);
  assert.equal(intents.classify(undefined), RING); // no client_state: someone dialled in
  assert.equal(intents.classify(encodeClientState("another-call")), RING);
  assert.equal(intents.classify(encodeClientState(ID, "customer")), RING); // not the agent leg
  assert.equal(intents.classify("garbage"), RING);
});

test("intents: a pending call id expires", () => {
  const c = clock();
  const intents = new Intents({ now: c.now, intentTtlMs: 1000 });
  intents.settle(intents.begin(), ID);
  c.t += 999;
  assert.equal(intents.isPending(ID), true);
  c.t += 1;
  assert.equal(intents.isPending(ID), false);
  assert.equal(intents.classify(encodeClientState(ID)), RING);
});

test("intents: while our POST is in flight an unknown agent invite waits, then matches", () => {
  const c = clock();
  const intents = new Intents({ now: c.now, placingTtlMs: 5000 });
  const token = intents.begin();
  assert.equal(intents.classify(encodeClientState(ID)), WAIT);
  assert.equal(intents.nextDeadline(), c.t + 5000);
  intents.settle(token, ID);
  assert.equal(intents.classify(encodeClientState(ID)), ANSWER);
  assert.equal(intents.nextDeadline(), null);
});

test("intents: a refused POST leaves nothing to answer; a stuck one stops holding invites", () => {
  const c = clock();
  const intents = new Intents({ now: c.now, placingTtlMs: 5000 });
  intents.settle(intents.begin(), null);
  assert.equal(intents.classify(encodeClientState(ID)), RING);
  intents.begin(); // never settles
  assert.equal(intents.classify(encodeClientState(ID)), WAIT);
  c.t += 5000;
  assert.equal(intents.classify(encodeClientState(ID)), RING);
});

test("intents: a call another tab asked for is left to that tab", () => {
  const c = clock();
  const intents = new Intents({ now: c.now });
  intents.remote({ type: "placing", tab: "t2" });
  assert.equal(intents.classify(encodeClientState(ID)), WAIT);
  intents.remote({ type: "claim", tab: "t2", call: ID });
  assert.equal(intents.classify(encodeClientState(ID)), ELSEWHERE);
  assert.equal(intents.classify(encodeClientState("other")), RING);
  intents.remote({ type: "placing", tab: "t3" });
  intents.remote({ type: "settled", tab: "t3" });
  assert.equal(intents.classify(encodeClientState("other")), RING);
  // Junk from the channel changes nothing.
  for (const junk of [null, "x", { type: "claim" }, { type: "claim", tab: "t4", call: 5 }]) intents.remote(junk);
  assert.equal(intents.classify(encodeClientState("other")), RING);
});
