/*
 * Which inbound invites this page answers by itself. A click on Call records an intent
 * (the POST is in flight, then the call id it answered with); an invite whose
 * client_state names a call id this page asked for is auto-answered, once. Other tabs of
 * the same agent tell us about their own intents (BroadcastChannel, see phone.mjs), so a
 * call placed in one tab is answered there and stays quiet in the others. Anything else
 * rings like a phone: never auto-answered.
 *
 * DOM-free; `now` is injected so expiry is tested without waiting.
 */
import { AGENT_LEG, decodeClientState } from "./client-state.mjs";

export const ANSWER = "answer"; // ours: answer it without asking
export const RING = "ring"; // not ours: ring, the person answers or declines
export const ELSEWHERE = "elsewhere"; // another tab of ours asked for it: leave it alone
export const WAIT = "wait"; // a POST is still in flight here or elsewhere: ask again later

export const DEFAULTS = {
  intentTtlMs: 60_000, // a call id we asked for stays answerable this long
  placingTtlMs: 15_000, // a POST in flight (ours or another tab's) holds invites this long
};

export class Intents {
  constructor({ now = () => Date.now(), intentTtlMs, placingTtlMs } = {}) {
    this.now = now;
    this.intentTtlMs = intentTtlMs || DEFAULTS.intentTtlMs;
    this.placingTtlMs = placingTtlMs || DEFAULTS.placingTtlMs;
    this.pending = new Map(); // call id -> expiry (ms)
    this.placing = new Map(); // token -> expiry
    this.remoteClaims = new Map(); // call id -> expiry
    this.remotePlacing = new Map(); // tab id -> expiry
    this.nextToken = 1;
  }

  prune() {
    const t = this.now();
    for (const map of [this.pending, this.placing, this.remoteClaims, this.remotePlacing]) {
      for (const [key, until] of map) if (until <= t) map.delete(key);
    }
  }

  // A click: the POST that places a call is about to go out. Returns its token.
  begin() {
    const token = this.nextToken++;
    this.placing.set(token, this.now() + this.placingTtlMs);
    return token;
  }

  // The POST answered: with the call id (201) or null (refused, failed).
  settle(token, callId) {
    this.placing.delete(token);
    if (callId) this.pending.set(String(callId), this.now() + this.intentTtlMs);
  }

  // An invite for this call was answered (or the call ended): never answer it again.
  consume(callId) {
    this.pending.delete(String(callId));
  }

  // What another tab said: {type: "placing", tab} | {type: "claim", tab, call} |
  // {type: "settled", tab}. Unknown messages are ignored.
  remote(msg) {
    if (!msg || typeof msg !== "object" || typeof msg.tab !== "string") return;
    const t = this.now();
    if (msg.type === "placing") this.remotePlacing.set(msg.tab, t + this.placingTtlMs);
    else if (msg.type === "settled") this.remotePlacing.delete(msg.tab);
    else if (msg.type === "claim" && typeof msg.call === "string") {
      this.remotePlacing.delete(msg.tab);
      this.remoteClaims.set(msg.call, t + this.intentTtlMs);
    }
  }

  isPending(callId) {
    this.prune();
    return this.pending.has(String(callId));
  }

  // What to do with an invite carrying this client_state (raw, as received).
  classify(clientState) {
    this.prune();
    const state = decodeClientState(clientState);
    if (!state || state.leg !== AGENT_LEG) return RING;
    if (this.pending.has(state.call)) return ANSWER;
    if (this.remoteClaims.has(state.call)) return ELSEWHERE;
    if (this.placing.size || this.remotePlacing.size) return WAIT;
    return RING;
  }

  // When a WAIT verdict can change by itself (the earliest placing expiry), or null.
  nextDeadline() {
    this.prune();
    const all = [...this.placing.values(), ...this.remotePlacing.values()];
    return all.length ? Math.min(...all) : null;
  }
}
