/*
 * The controls of a call in this page: mute, hold, a DTMF keypad, and the microphone
 * and speaker (speaker only where the browser has setSinkId). Next to the call button
 * that placed the call (its status, timer and Hang up are the button's own), or, for a
 * call that rings here, in a small panel with its own status, timer, Answer/Decline and
 * Hang up (ringer.mjs). Real buttons with labels; aria-pressed for the toggles.
 */
import { guard, warn } from "../call-button/guard.mjs";
import { KEYPAD, keyFromKeyboard } from "./dtmf.mjs";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function button(className, text, label, onClick) {
  const b = el("button", className, text);
  b.type = "button";
  if (label) b.setAttribute("aria-label", label);
  b.addEventListener("click", guard(onClick));
  return b;
}

export class CallControls {
  constructor(session, { display }) {
    this.session = session;
    this.root = el("span", "tel-phone");
    this.root.setAttribute("role", "group");
    this.root.setAttribute("aria-label", "Call controls" + (display ? ", " + display : ""));
    this.mute = button("tel-phone__mute", "Mute", "Mute microphone", () => session.setMuted(!session.muted));
    this.hold = button("tel-phone__hold", "Hold", "Hold call", () => session.setHeld(!session.held));
    this.keys = button("tel-phone__keys", "Keypad", "Keypad", () => this.toggleKeypad());
    this.keys.setAttribute("aria-expanded", "false");
    this.keypad = this.buildKeypad();
    this.root.append(this.mute, this.hold, this.keys, this.keypad);
    this.buildDevices();
    this.unsubscribe = session.onUpdate(() => this.render());
    this.render();
  }

  buildKeypad() {
    const pad = el("span", "tel-phone__keypad");
    pad.hidden = true;
    pad.id = "tel-keypad-" + Math.random().toString(36).slice(2);
    this.keys.setAttribute("aria-controls", pad.id);
    this.sent = el("span", "tel-phone__digits");
    this.sent.setAttribute("aria-live", "polite");
    for (const row of KEYPAD) {
      for (const [digit, letters] of row) {
        const b = button("tel-phone__key", digit, "Send " + digit, () => this.press(digit));
        b.setAttribute("data-tel-dtmf", digit);
        if (letters) b.appendChild(el("span", "tel-phone__letters", letters)).setAttribute("aria-hidden", "true");
        pad.appendChild(b);
      }
    }
    pad.appendChild(this.sent);
    pad.addEventListener(
      "keydown",
      guard((event) => {
        const key = keyFromKeyboard(event.key);
        if (key) this.press(key);
      })
    );
    return pad;
  }

  press(key) {
    if (this.session.dtmf(key)) this.sent.textContent = (this.sent.textContent + key).slice(-16);
  }

  toggleKeypad() {
    this.keypad.hidden = !this.keypad.hidden;
    this.keys.setAttribute("aria-expanded", String(!this.keypad.hidden));
    if (!this.keypad.hidden) this.keypad.querySelector("button").focus();
  }

  // Microphone and speaker pickers, filled once the browser lists the devices (labels
  // are only given after the microphone was allowed, which answering a call did).
  buildDevices() {
    const media = navigator.mediaDevices;
    if (!media || typeof media.enumerateDevices !== "function") return;
    const sinkOk = typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
    media
      .enumerateDevices()
      .then(
        guard((devices) => {
          if (!this.root.isConnected && !this.root.parentNode) return;
          this.addPicker(devices, "audioinput", "Microphone", (id) => this.session.setMicrophone(id));
          if (sinkOk) this.addPicker(devices, "audiooutput", "Speaker", (id) => this.session.setSpeaker(id));
        })
      )
      .catch((e) => warn("softphone.devices failed", e));
  }

  addPicker(devices, kind, label, apply) {
    const mine = devices.filter((d) => d.kind === kind && d.deviceId);
    if (mine.length < 2) return; // nothing to choose
    const wrap = el("label", "tel-phone__device");
    wrap.appendChild(el("span", "tel-phone__device-label", label));
    const select = el("select", "tel-phone__select");
    select.setAttribute("data-tel-device", kind);
    mine.forEach((d, i) => {
      const option = el("option", "", d.label || `${label} ${i + 1}`);
      option.value = d.deviceId;
      select.appendChild(option);
    });
    select.addEventListener("change", guard(() => apply(select.value)));
    wrap.appendChild(select);
    this.root.appendChild(wrap);
  }

  render() {
    const s = this.session;
    const live = s.state === "active" || s.state === "held";
    this.mute.textContent = s.muted ? "Unmute" : "Mute";
    this.mute.setAttribute("aria-label", s.muted ? "Unmute microphone" : "Mute microphone");
    this.mute.setAttribute("aria-pressed", String(s.muted));
    this.hold.textContent = s.held ? "Resume" : "Hold";
    this.hold.setAttribute("aria-label", s.held ? "Resume call" : "Hold call");
    this.hold.setAttribute("aria-pressed", String(s.held));
    for (const b of [this.mute, this.hold, this.keys]) b.disabled = !live;
    this.root.setAttribute("data-tel-phone-state", s.state);
    if (s.over) this.remove();
  }

  remove() {
    this.unsubscribe();
    if (this.root.parentNode) this.root.parentNode.removeChild(this.root);
  }
}
