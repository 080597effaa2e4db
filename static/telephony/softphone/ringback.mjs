/*
 * Ringback in the page while the customer's phone rings.
 *
 * The agent's leg is answered before the customer is dialled, so the agent would hear
 * silence until the customer picks up: the SDK's ringbackFile only plays for calls the SDK
 * places itself, and a playback on the agent leg would need an audio URL Telnyx can fetch.
 * So the page makes the tone itself (WebAudio, no file): the North American ringback,
 * 440 + 480 Hz, 2 s on and 4 s off, while our call is `ringing` and its leg is up here.
 * The schedule is DOM-free and tested; playing it never throws into the page.
 */

export const RINGBACK = Object.freeze({ freqs: [440, 480], onMs: 2000, offMs: 4000, level: 0.08 });

// The [start, end] ms windows of tone within the first `spanMs` (cycles of on + off).
export function ringbackWindows(spanMs, pattern = RINGBACK) {
  const period = pattern.onMs + pattern.offMs;
  const windows = [];
  if (!(period > 0) || !(spanMs > 0)) return windows;
  for (let start = 0; start < spanMs; start += period) {
    windows.push([start, Math.min(start + pattern.onMs, spanMs)]);
  }
  return windows;
}

const SPAN_MS = 120_000; // scheduled ahead at once; a customer rings for less than that

// Start the tone; returns stop(). No AudioContext (or a refused one): a silent no-op.
export function startRingback(win = globalThis, pattern = RINGBACK) {
  let ctx = null;
  try {
    const Ctx = win.AudioContext || win.webkitAudioContext;
    if (!Ctx) return () => {};
    ctx = new Ctx();
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    const t0 = ctx.currentTime + 0.05;
    for (const [from, to] of ringbackWindows(SPAN_MS, pattern)) {
      gain.gain.setValueAtTime(pattern.level, t0 + from / 1000);
      gain.gain.setValueAtTime(0, t0 + to / 1000);
    }
    for (const hz of pattern.freqs) {
      const osc = ctx.createOscillator();
      osc.frequency.value = hz;
      osc.connect(gain);
      osc.start(t0);
    }
  } catch (e) {
    console.warn("[telephony] ringback_failed", e);
  }
  let stopped = false;
  return () => {
    if (stopped || !ctx) return;
    stopped = true;
    try {
      ctx.close();
    } catch (e) {
      console.warn("[telephony] ringback_stop_failed", e);
    }
  };
}
