/*
 * The softphone's state machine, and the one line each failure shows in the button.
 *
 *   idle -> loading (SDK) -> logging-in -> ready -> ringing -> answering -> active <-> held
 *                                            ^                                  |
 *                                            +------------ ended <--------------+
 *
 * Any state before a call can fail into `error` with a code; the text for people comes
 * from ERRORS. A call in progress is never ended by the machine: a failure that arrives
 * during a call (a token refresh, a socket loss) is kept and applied when the call ends.
 * DOM-free: unit-tested under Node (tests/js/softphone-state.test.mjs).
 */

// code -> the one line shown in place of the call button. Logged as "softphone.<code>".
export const ERRORS = {
  sdk_load_failed: "Calls unavailable: the phone could not be loaded",
  webrtc_missing: "Calls unavailable: this browser cannot make calls",
  microphone_denied: "Calls unavailable: allow the microphone to call",
  microphone_missing: "Calls unavailable: no microphone found",
  login_failed: "Calls unavailable: the phone could not log in",
  service_down: "Calls unavailable",
  unexpected: "Calls unavailable: the phone stopped working",
};

export const STATES = [
  "idle",
  "loading",
  "logging-in",
  "ready",
  "ringing",
  "answering",
  "active",
  "held",
  "ended",
  "error",
];

const IN_CALL = new Set(["ringing", "answering", "active", "held"]);

// state -> event -> next state. Events not listed for a state are ignored.
const TRANSITIONS = {
  idle: { start: "loading", fail: "error" },
  loading: { loaded: "logging-in", fail: "error" },
  "logging-in": { ready: "ready", fail: "error" },
  ready: { invite: "ringing", answer: "answering", disconnected: "logging-in", fail: "error" },
  ringing: { answer: "answering", active: "active", end: "ended" },
  answering: { active: "active", end: "ended" },
  active: { hold: "held", end: "ended" },
  held: { unhold: "active", active: "active", end: "ended" },
  ended: { reset: "ready", invite: "ringing", disconnected: "logging-in", fail: "error" },
  error: { start: "loading", retry: "logging-in" },
};

export function errorText(code) {
  return ERRORS[code] || ERRORS.unexpected;
}

export function isInCall(state) {
  return IN_CALL.has(state);
}

export class PhoneState {
  constructor({ onChange } = {}) {
    this.state = "idle";
    this.error = null; // {code, text} while in `error`
    this.deferred = null; // a failure that arrived during a call
    this.onChange = onChange || (() => {});
  }

  // Apply an event; returns true when the state changed. `fail` needs {code}.
  send(event, detail = {}) {
    if (event === "fail" && isInCall(this.state)) {
      this.deferred = { code: detail.code || "unexpected" };
      return false;
    }
    const next = (TRANSITIONS[this.state] || {})[event];
    if (!next) return false;
    const prev = this.state;
    this.state = next;
    this.error = next === "error" ? { code: detail.code || "unexpected", text: errorText(detail.code) } : null;
    this.onChange(next, prev, this.error);
    if (next === "ended" && this.deferred) {
      const code = this.deferred.code;
      this.deferred = null;
      this.send("fail", { code });
    }
    return true;
  }

  get ready() {
    return this.state === "ready" || this.state === "ended";
  }

  get inCall() {
    return isInCall(this.state);
  }
}
