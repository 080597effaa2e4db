/*
 * One call leg in this page, around the SDK's call object: what the controls may do
 * (answer, mute, hold, DTMF, devices, hang up) and its state, with listeners. Every SDK
 * call is wrapped: a failure is logged, never thrown into the page.
 */
import { guard, warn } from "../call-button/guard.mjs";
import { isDtmfKey } from "./dtmf.mjs";

export const LIVE = new Set(["ringing", "answering", "early", "active", "held", "recovering"]);
export const OVER = new Set(["hangup", "destroy", "purge"]);

function settle(promise, what) {
  return Promise.resolve(promise).catch((e) => warn("softphone." + what + " failed", e));
}

export class CallSession {
  constructor(call, { audio }) {
    this.call = call;
    this.audio = audio; // the page's <audio autoplay> with the remote stream
    this.callId = ""; // our call id, when the invite named one of our calls
    this.auto = false; // answered by itself (an agent leg this page asked for)
    this.ringing = false; // not ours: rings for the person to answer or decline
    this.ignored = false; // another tab of this agent asked for it
    this.startedAt = 0; // epoch ms when it became active
    this.muted = false;
    this.listeners = new Set();
  }

  get id() {
    return this.call.id;
  }

  get state() {
    return String(this.call.state || "");
  }

  get over() {
    return OVER.has(this.state);
  }

  get held() {
    return this.state === "held";
  }

  get remoteName() {
    const o = this.call.options || {};
    return o.remoteCallerName || o.remoteCallerNumber || "Unknown caller";
  }

  // The SDK's replacement for this call after a reattach (same id, recoveredCallId set):
  // it starts with the microphone as it was (mutedMicOnStart), so the muted flag stands.
  adopt(call) {
    this.call = call;
  }

  onUpdate(fn) {
    const wrapped = guard(fn);
    this.listeners.add(wrapped);
    return () => this.listeners.delete(wrapped);
  }

  // The SDK said something changed (telnyx.notification callUpdate).
  update() {
    if (this.state === "active" && !this.startedAt) this.startedAt = Date.now();
    for (const fn of [...this.listeners]) fn(this);
  }

  answer() {
    return settle(this.call.answer(), "answer");
  }

  hangup() {
    if (this.over) return Promise.resolve();
    return settle(this.call.hangup(), "hangup");
  }

  setMuted(on) {
    try {
      if (on) this.call.muteAudio();
      else this.call.unmuteAudio();
      this.muted = !!on;
    } catch (e) {
      warn("softphone.mute failed", e);
    }
    this.update();
  }

  setHeld(on) {
    return settle(on ? this.call.hold() : this.call.unhold(), "hold");
  }

  // One DTMF key; anything else is refused here (the server would reject it).
  dtmf(key) {
    if (!isDtmfKey(key)) return false;
    try {
      this.call.dtmf(key);
      return true;
    } catch (e) {
      warn("softphone.dtmf failed", e);
      return false;
    }
  }

  setMicrophone(deviceId) {
    return settle(this.call.setAudioInDevice(deviceId), "microphone");
  }

  // The speaker: the remote <audio> element's output (setSinkId, where supported).
  setSpeaker(deviceId) {
    if (!this.audio || typeof this.audio.setSinkId !== "function") return Promise.resolve();
    return settle(this.audio.setSinkId(deviceId), "speaker");
  }
}
