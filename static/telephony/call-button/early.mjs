/*
 * call.update messages that arrive before the POST that placed the call has answered
 * (the push can beat the HTTP reply). Kept for a minute, the most advanced one per call,
 * and applied when the call is tracked. DOM-free; the clock is injected.
 */
import { rankOf } from "./call-status.mjs";

const KEEP_MS = 60000;

export class EarlyUpdates {
  constructor({ now = Date.now, keepMs = KEEP_MS } = {}) {
    this.now = now;
    this.keepMs = keepMs;
    this.byId = new Map(); // call id -> {call, at}
  }

  remember(call) {
    const now = this.now();
    for (const [id, seen] of this.byId) {
      if (now - seen.at > this.keepMs) this.byId.delete(id);
    }
    const id = String(call.id);
    const seen = this.byId.get(id);
    if (!seen || (rankOf(call.status) || 0) >= (rankOf(seen.call.status) || 0)) {
      this.byId.set(id, { call, at: now });
    }
  }

  // The kept update for this call, if any, forgetting it.
  take(id) {
    const seen = this.byId.get(String(id));
    this.byId.delete(String(id));
    return seen ? seen.call : null;
  }

  get size() {
    return this.byId.size;
  }
}
