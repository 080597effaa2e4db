/*
 * One call button ([data-tel-call] rendered by {% call_button %}): the idle look, a call
 * from click to its end, the hang-up. Page-wide things (the service state, the socket,
 * polling) are the page's: a widget reaches them through the `page` it is given.
 */
import { api } from "./api.mjs";
import { startRingback } from "../softphone/ringback.mjs";
import { answeredAtMs, clock, describeCall, FINAL_RANK, movesForward, rankOf } from "./call-status.mjs";
import { guard, later, warn } from "./guard.mjs";
import { cooldownMs, reasonFor, suggestsOutage } from "./reasons.mjs";
import { Recorder } from "./recorder.mjs";
import { policyOf } from "./recording.mjs";
import { callAddress, hangupAddress } from "./urls.mjs";

const UNAVAILABLE_TEXT = "Calls unavailable";
const PHONE_ICON =
  '<svg class="tel-call__icon" aria-hidden="true" focusable="false" viewBox="0 0 24 24" ' +
  'width="16" height="16"><path fill="currentColor" d="M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2' +
  "-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4" +
  'a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z"/></svg>';

function remove(node) {
  if (node && node.parentNode) node.parentNode.removeChild(node);
}

export class Widget {
  constructor(root, page) {
    this.root = root;
    this.page = page;
    this.number = root.getAttribute("data-tel-number") || "";
    const reason = root.getAttribute("data-tel-reason") || "";
    // Anonymous users, invalid and forbidden numbers stay plain text whatever the state.
    this.live = !!this.number && (reason === "" || reason === "service" || reason === "error");
    this.label = root.getAttribute("data-tel-label") || "Call";
    this.display = root.getAttribute("data-tel-display") || this.number;
    this.ariaLabel = root.getAttribute("data-tel-aria-label") || this.label + " " + this.display;
    this.callUrl = root.getAttribute("data-tel-call-url") || "/api/webrtc/call";
    this.cookieName = root.getAttribute("data-tel-csrf-cookie") || "csrftoken";
    this.available = root.getAttribute("data-tel-state") === "available";
    this.call = null; // {id, status, rank, answeredAt, hangingUp}
    this.busy = false; // the POST that places a call is in flight
    this.coolUntil = 0; // after a 429
    this.keepFocus = false; // the focus was in this widget before we disabled something
    this.tick = 0;
    this.hangupButton = null;
    this.blocked = null; // {code, text} from the softphone: shown instead of the button
    this.session = null; // the softphone's leg of our call, once answered here
    this.stopRingback = null; // stops the ringback tone the page plays while the customer rings
    this.controls = null;
    this.recordingPolicy = policyOf(root.getAttribute("data-tel-recording"));
    this.recorder = null; // the recording indicator (and on-demand toggle) of our call
    this.region = root.querySelector(".tel-call__status");
    if (!this.region) {
      this.region = document.createElement("span");
      this.region.className = "tel-call__status";
      this.region.setAttribute("role", "status");
      this.region.setAttribute("aria-live", "polite");
      root.appendChild(this.region);
    }
    this.timer = document.createElement("span");
    this.timer.className = "tel-call__timer";
    this.timer.setAttribute("aria-hidden", "true");
    this.timer.hidden = true;
    root.insertBefore(this.timer, this.region.nextSibling);
    this.bind(root.querySelector("button.tel-call__button"));
    root.setAttribute("data-tel-ready", "");
  }

  bind(button) {
    this.button = button;
    if (button && !button.getAttribute("data-tel-bound")) {
      button.setAttribute("data-tel-bound", "");
      button.addEventListener("click", guard(() => this.dial()));
    }
  }

  say(text, state) {
    if (this.region.textContent !== text) this.region.textContent = text;
    this.root.setAttribute("data-tel-call-state", state || "");
  }

  // Only move the focus when it is ours or lost (on <body>), never away from the user.
  mayTakeFocus() {
    const active = document.activeElement;
    return !active || active === document.body || this.root.contains(active);
  }

  setBlocked(blocked) {
    if (!this.live) return;
    this.blocked = blocked;
    if (!this.call && !this.busy) this.renderIdle();
  }

  setAvailable(ok) {
    if (!this.live) return;
    this.available = ok;
    if (this.recorder) this.recorder.update();
    if (!this.call && !this.busy) this.renderIdle();
  }

  // The resting look: the call button, or "Calls unavailable" when the service is down.
  renderIdle() {
    const root = this.root;
    const refocus = this.keepFocus || root.contains(document.activeElement);
    this.keepFocus = false;
    this.removeHangup();
    if (this.available && !this.blocked) {
      remove(root.querySelector(".tel-unavailable"));
      remove(root.querySelector(".tel-call__hint"));
      if (!this.button || !this.button.isConnected) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "tel-call__button";
        button.setAttribute("aria-label", this.ariaLabel);
        button.innerHTML = PHONE_ICON; // a constant, never data
        const label = document.createElement("span");
        label.className = "tel-call__label";
        label.textContent = this.label;
        button.appendChild(label);
        root.insertBefore(button, root.firstChild);
        this.bind(button);
      }
      const cooling = this.coolUntil > Date.now();
      this.button.disabled = cooling;
      root.classList.remove("tel-call--unavailable");
      root.removeAttribute("data-tel-softphone");
      root.setAttribute("data-tel-state", "available");
      if (refocus && !cooling && this.mayTakeFocus()) this.button.focus();
    } else {
      remove(this.button);
      this.button = null;
      let fallback = root.querySelector(".tel-unavailable");
      if (!fallback) {
        fallback = document.createElement("span");
        fallback.className = "tel-unavailable";
        root.insertBefore(fallback, root.firstChild);
      }
      const text = this.available && this.blocked ? this.blocked.text : UNAVAILABLE_TEXT;
      if (fallback.textContent !== text) fallback.textContent = text;
      if (this.available && this.blocked) root.setAttribute("data-tel-softphone", this.blocked.code);
      else root.removeAttribute("data-tel-softphone");
      if (refocus && this.mayTakeFocus()) {
        fallback.setAttribute("tabindex", "-1");
        fallback.focus();
      }
      root.classList.add("tel-call--unavailable");
      root.setAttribute("data-tel-state", "unavailable");
    }
  }

  dial() {
    if (this.busy || this.call || !this.available || this.blocked || this.coolUntil > Date.now()) return;
    this.busy = true;
    // Disabling a focused button drops the focus to <body>: remember to bring it back.
    this.keepFocus = this.root.contains(document.activeElement);
    if (this.button) this.button.disabled = true;
    this.say("Calling…", "calling");
    // The softphone first (logged in, microphone allowed): no call without it.
    this.page
      .softphone()
      .then((phone) => (phone ? phone.prepare().then((ready) => ({ phone, ready })) : { phone: null, ready: { ok: true } }))
      .then(
        guard(({ phone, ready }) => {
          if (ready.ok) {
            this.place(phone, ready.token);
            return;
          }
          this.busy = false;
          if (ready.code === "busy") this.say("Call failed: finish the call in progress first", "failed");
          else this.say("", "error");
          this.page.block(ready.code);
          this.renderIdle();
        })
      )
      .catch((e) => {
        this.busy = false;
        warn("dial failed", e);
      });
  }

  place(phone, token) {
    this.busy = true;
    api("POST", this.callUrl, { to: this.number }, this.cookieName)
      .then(
        guard((res) => {
          this.busy = false;
          const created = res.status === 201 && res.body && res.body.call && res.body.call.id;
          if (created) this.track(res.body.call);
          if (phone && token) phone.settle(token, created ? String(res.body.call.id) : null);
          if (created) return;
          if (res.status === 429) {
            this.coolUntil = Date.now() + cooldownMs(res.retryAfter);
            later(() => {
              if (!this.call && !this.busy) this.renderIdle();
            }, this.coolUntil - Date.now() + 50);
          }
          this.say("Call failed: " + reasonFor(res), "failed");
          if (suggestsOutage(res)) this.page.refreshStatus();
          this.renderIdle();
        })
      )
      .catch((e) => warn("dial failed", e));
  }

  track(call) {
    this.call = { id: String(call.id), status: "", rank: -1, answeredAt: 0, hangingUp: false };
    this.page.trackCall(this.call.id, this);
    this.showHangup();
    this.recorder = new Recorder(this, this.recordingPolicy);
    this.update(call);
    const early = this.page.takeEarlyUpdate(call.id);
    if (early) this.update(early);
    this.page.scheduleCallPoll();
  }

  showHangup() {
    if (this.hangupButton) return;
    const focusHere = this.keepFocus || this.root.contains(document.activeElement);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tel-call__hangup";
    button.setAttribute("aria-label", "Hang up, " + this.display);
    button.textContent = "Hang up";
    button.addEventListener("click", guard(() => this.hangup()));
    this.root.insertBefore(button, this.region);
    this.hangupButton = button;
    if (this.button) this.button.disabled = true;
    if (focusHere && this.mayTakeFocus()) button.focus();
  }

  // The softphone answered our call's agent leg here: its controls go next to the button.
  attachSession(session, CallControls) {
    if (!this.call || this.session) return;
    this.session = session;
    this.ringback();
    this.controls = new CallControls(session, { display: this.display });
    this.root.insertBefore(this.controls.root, this.region);
    let wasHeld = false;
    session.onUpdate(() => {
      if (session.over) {
        if (this.session === session) this.detachSession();
      } else if (session.held !== wasHeld && this.call) {
        wasHeld = session.held;
        this.say(wasHeld ? "On hold" : "In call", wasHeld ? "held" : "in-call");
      }
    });
  }

  detachSession() {
    if (this.controls) this.controls.remove();
    this.controls = null;
    this.session = null;
    this.ringback();
  }

  removeHangup() {
    if (!this.hangupButton) return;
    remove(this.hangupButton);
    this.hangupButton = null;
  }

  update(call) {
    if (!this.call || !call || String(call.id) !== this.call.id) return;
    if (this.recorder && this.call.rank < FINAL_RANK) {
      // The flag changes without the status moving; a stale status never hides the toggle.
      const status = movesForward(this.call, call.status) ? call.status : this.call.status;
      this.recorder.update({ ...call, status });
    }
    if (!movesForward(this.call, call.status)) return; // never backwards
    this.call.status = call.status;
    this.call.rank = rankOf(call.status);
    this.ringback();
    const shown = describeCall(call, { hangingUp: this.call.hangingUp });
    if (shown.final) {
      this.finish(shown.text, shown.state);
      return;
    }
    this.say(shown.text, shown.state);
    if (shown.timer) this.startTimer(call.answered_at);
  }

  // Our leg is up here and the customer's phone rings: the agent hears ringback.
  ringback() {
    const ringing = Boolean(this.call && this.session && this.call.status === "ringing");
    if (ringing && !this.stopRingback) this.stopRingback = startRingback(window);
    else if (!ringing && this.stopRingback) {
      this.stopRingback();
      this.stopRingback = null;
    }
  }

  startTimer(answeredAt) {
    this.call.answeredAt = answeredAtMs(answeredAt, Date.now());
    this.timer.hidden = false;
    const show = guard(() => {
      if (this.call) this.timer.textContent = clock((Date.now() - this.call.answeredAt) / 1000);
    });
    show();
    window.clearInterval(this.tick);
    this.tick = window.setInterval(show, 1000);
  }

  finish(text, state) {
    window.clearInterval(this.tick);
    if (this.session) this.session.hangup();
    this.detachSession();
    if (this.recorder) this.recorder.remove();
    this.recorder = null;
    this.timer.hidden = true;
    this.timer.textContent = "";
    if (this.call) this.page.untrackCall(this.call.id);
    this.call = null;
    this.say(text, state);
    this.renderIdle();
  }

  hangup() {
    const call = this.call;
    if (!call || call.hangingUp) return;
    call.hangingUp = true;
    this.keepFocus = this.root.contains(document.activeElement);
    if (this.hangupButton) this.hangupButton.disabled = true;
    this.say("Hanging up…", this.root.getAttribute("data-tel-call-state"));
    if (this.session) this.session.hangup(); // our leg at once; the API ends the rest
    api("POST", hangupAddress(this.callUrl, call.id), undefined, this.cookieName)
      .then(
        guard((res) => {
          if (this.call !== call) return;
          if (res.status === 200 && res.body && res.body.call) {
            this.update(res.body.call);
            if (this.call === call && call.rank < FINAL_RANK) this.say("Hanging up…", "ending");
            return;
          }
          if (res.status === 404) {
            this.finish("Call ended", "ended");
            return;
          }
          call.hangingUp = false;
          if (this.hangupButton) {
            this.hangupButton.disabled = false;
            if (this.keepFocus && this.mayTakeFocus()) this.hangupButton.focus();
          }
          this.say("Could not hang up: " + reasonFor(res), "error");
        })
      )
      .catch((e) => warn("hangup failed", e));
  }

  poll() {
    const call = this.call;
    if (!call) return;
    api("GET", callAddress(this.callUrl, call.id))
      .then(
        guard((res) => {
          if (this.call !== call) return;
          if (res.status === 200 && res.body && res.body.call) this.update(res.body.call);
          else if (res.status === 404) this.finish("Call ended", "ended");
        })
      )
      .catch((e) => warn("call poll failed", e));
  }
}
