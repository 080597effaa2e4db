/*
 * The recording indicator and the on-demand toggle of one call button's call (see
 * recording.mjs for what they show). The indicator is a live region (role=status): a red
 * dot and "Recording" whenever the call is recorded, under either policy; the toggle is a
 * real button with aria-pressed, shown while the customer is on the line under
 * TELEPHONY_RECORDING=on_demand, and POSTs {callUrl}/<id>/recording.
 */
import { api } from "./api.mjs";
import { guard, warn } from "./guard.mjs";
import { recordingFailure, recordingView } from "./recording.mjs";
import { recordingAddress } from "./urls.mjs";

function el(tag, className) {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}

export class Recorder {
  constructor(widget, policy) {
    this.widget = widget;
    this.policy = policy;
    this.call = null; // the latest call update
    this.pending = false;
    this.root = el("span", "tel-rec");
    this.indicator = el("span", "tel-rec__indicator");
    this.indicator.setAttribute("role", "status");
    this.indicator.setAttribute("aria-live", "polite");
    this.button = el("button", "tel-rec__toggle");
    this.button.type = "button";
    this.button.hidden = true;
    this.button.addEventListener("click", guard(() => this.toggle()));
    this.note = el("span", "tel-rec__note");
    this.note.setAttribute("role", "status");
    this.note.setAttribute("aria-live", "polite");
    this.root.append(this.indicator, this.button, this.note);
    widget.root.insertBefore(this.root, widget.region);
  }

  update(call) {
    if (call) this.call = call;
    const view = recordingView(this.policy, this.call, {
      pending: this.pending,
      available: this.widget.available !== false,
    });
    this.root.setAttribute("data-tel-recording", view.indicator ? "on" : "off");
    if (view.indicator && !this.indicator.firstChild) {
      const dot = el("span", "tel-rec__dot");
      dot.setAttribute("aria-hidden", "true");
      this.indicator.append(dot, document.createTextNode("Recording"));
    } else if (!view.indicator && this.indicator.firstChild) {
      this.indicator.textContent = "";
    }
    const focused = document.activeElement === this.button;
    this.button.hidden = !view.toggle;
    this.button.textContent = view.label;
    this.button.setAttribute("aria-pressed", String(view.pressed));
    this.button.disabled = view.disabled;
    if (view.note) this.say(view.note);
    const hangup = this.widget.hangupButton;
    if (focused && !view.toggle && hangup && this.widget.mayTakeFocus()) hangup.focus();
  }

  say(text) {
    if (this.note.textContent !== text) this.note.textContent = text;
  }

  toggle() {
    const call = this.call;
    if (!call || this.pending) return;
    const wanted = !call.recording;
    this.pending = true;
    this.say("");
    this.update();
    api("POST", recordingAddress(this.widget.callUrl, call.id), { recording: wanted }, this.widget.cookieName)
      .then(
        guard((res) => {
          this.pending = false;
          if (res.status === 200 && res.body && res.body.call) {
            this.update(res.body.call);
            return;
          }
          this.say(recordingFailure(wanted, res));
          this.update();
        })
      )
      .catch((e) => warn("recording toggle failed", e));
  }

  remove() {
    if (this.root.parentNode) this.root.parentNode.removeChild(this.root);
  }
}
