/*
 * A call that rings here because this page did not ask for it: a small panel that says
 * who is calling, with Answer and Decline, then the call's status, timer, controls and
 * Hang up. It is never answered without a click. One panel per ringing call, in a
 * fixed region at the bottom of the page, announced through its own live region.
 */
import { guard, later } from "../call-button/guard.mjs";
import { CallControls } from "./controls.mjs";
import { elapsedSeconds, formatDuration } from "./timer.mjs";

const TEXT = {
  ringing: "Incoming call",
  answering: "Connecting…",
  active: "In call",
  held: "On hold",
};

function region() {
  let node = document.querySelector(".tel-ringer-region");
  if (!node) {
    node = document.createElement("div");
    node.className = "tel-ringer-region";
    document.body.appendChild(node);
  }
  return node;
}

function button(className, text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", guard(onClick));
  return b;
}

export class Ringer {
  constructor(session) {
    this.session = session;
    this.tick = 0;
    const who = session.remoteName;
    this.root = document.createElement("div");
    this.root.className = "tel-ringer";
    this.root.setAttribute("role", "group");
    this.root.setAttribute("aria-label", "Incoming call from " + who);
    this.title = document.createElement("span");
    this.title.className = "tel-ringer__who";
    this.title.textContent = who;
    this.status = document.createElement("span");
    this.status.className = "tel-ringer__status";
    this.status.setAttribute("role", "status");
    this.status.setAttribute("aria-live", "assertive");
    this.timer = document.createElement("span");
    this.timer.className = "tel-ringer__timer";
    this.timer.setAttribute("aria-hidden", "true");
    this.answer = button("tel-ringer__answer", "Answer", "Answer call from " + who, () => session.answer());
    this.decline = button("tel-ringer__decline", "Decline", "Decline call from " + who, () => session.hangup());
    this.hangup = button("tel-ringer__hangup", "Hang up", "Hang up call with " + who, () => session.hangup());
    this.hangup.hidden = true;
    this.root.append(this.title, this.status, this.timer, this.answer, this.decline, this.hangup);
    this.controls = null;
    region().appendChild(this.root);
    this.unsubscribe = session.onUpdate(() => this.render());
    this.render();
  }

  render() {
    const s = this.session;
    const state = s.state;
    if (s.over) {
      this.status.textContent = "Call ended";
      this.finish();
      return;
    }
    const text = TEXT[state] || "";
    if (text && this.status.textContent !== text) this.status.textContent = text;
    this.root.setAttribute("data-tel-phone-state", state);
    const ringing = state === "ringing";
    this.answer.hidden = this.decline.hidden = !ringing;
    this.hangup.hidden = ringing;
    if (!ringing && !this.controls) {
      this.controls = new CallControls(s, { display: s.remoteName });
      this.root.insertBefore(this.controls.root, this.hangup);
      if (this.root.contains(document.activeElement) || document.activeElement === document.body) this.hangup.focus();
    }
    if ((state === "active" || state === "held") && !this.tick) {
      const show = guard(() => {
        this.timer.textContent = formatDuration(elapsedSeconds(s.startedAt || Date.now(), Date.now()));
      });
      show();
      this.tick = window.setInterval(show, 1000);
    }
  }

  finish() {
    window.clearInterval(this.tick);
    this.unsubscribe();
    if (this.controls) this.controls.remove();
    for (const b of [this.answer, this.decline, this.hangup]) b.hidden = true;
    // Leave "Call ended" readable for a moment, then take the panel away.
    later(() => {
      if (this.root.parentNode) this.root.parentNode.removeChild(this.root);
    }, 4000);
  }
}
