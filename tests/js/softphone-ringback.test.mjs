// Ringback while the customer rings (static/telephony/softphone/ringback.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { RINGBACK, ringbackWindows, startRingback } from "../../static/telephony/softphone/ringback.mjs";

test("ringbackWindows: 2 s of tone every 6 s, cut at the span", () => {
  assert.deepEqual(ringbackWindows(13_000), [
    [0, 2000],
    [6000, 8000],
    [12000, 13000],
  ]);
  assert.deepEqual(ringbackWindows(0), []);
  assert.deepEqual(ringbackWindows(5000, { ...RINGBACK, onMs: 0, offMs: 0 }), []);
});

test("startRingback: two oscillators at 440 and 480 Hz, stopped once", () => {
  const made = { freqs: [], closed: 0, levels: [] };
  class FakeContext {
    constructor() {
      this.currentTime = 10;
      this.destination = {};
    }
    createGain() {
      return {
        gain: { value: 1, setValueAtTime: (v) => made.levels.push(v) },
        connect() {},
      };
    }
    createOscillator() {
      const osc = { frequency: { value: 0 }, connect() {}, start() {} };
      made.freqs.push(osc.frequency);
      return osc;
    }
    close() {
      made.closed += 1;
    }
  }
  const stop = startRingback({ AudioContext: FakeContext });
  assert.deepEqual(made.freqs.map((f) => f.value), [440, 480]);
  assert.ok(made.levels.includes(RINGBACK.level) && made.levels.includes(0));
  stop();
  stop();
  assert.equal(made.closed, 1);
});

test("startRingback: no WebAudio, or a context that throws, is silent and never throws", () => {
  const stop = startRingback({});
  stop();
  const warn = console.warn;
  console.warn = () => {};
  try {
    const broken = startRingback({
      AudioContext: class {
        constructor() {
          throw new Error("refused");
        }
      },
    });
    broken();
  } finally {
    console.warn = warn;
  }
});
