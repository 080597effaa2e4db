/*
 * The call buttons' side of the softphone (static/telephony/softphone/): read its
 * settings from the tag's data attributes, load it on demand (a dynamic import(), so a
 * page without a live call button fetches none of it, and only once the service is
 * available), route its calls to the buttons that placed them, and show its failures as
 * one line in place of every button ("Calls unavailable: ..."), with no call placed.
 */
import { errorText } from "../softphone/state.mjs";
import { guard, warn } from "./guard.mjs";

export class PhoneLink {
  constructor(page) {
    this.page = page;
    this.config = null; // {sdkUrl, rtcHost, credentialUrl, cookieName}
    this.phone = null; // promise of the Softphone, or null before it is wanted
    this.instance = null;
    this.blocked = null; // {code, text}: why no call can be placed from this page
    this.micWatch = false;
  }

  // A button was set up: take the settings from the first live one that has them.
  adopt(node, widget) {
    if (!widget.live) return;
    if (this.blocked) widget.setBlocked(this.blocked);
    const sdkUrl = node.getAttribute("data-tel-sdk-url");
    if (this.config || !sdkUrl) return;
    this.config = {
      sdkUrl,
      rtcHost: node.getAttribute("data-tel-rtc-host") || "",
      credentialUrl: node.getAttribute("data-tel-credential-url") || "/api/webrtc/credential",
      cookieName: node.getAttribute("data-tel-csrf-cookie") || "csrftoken",
    };
  }

  available() {
    const page = this.page;
    if (page.service.healthy !== null) return page.service.healthy === true;
    return page.widgets.some((w) => w.live && w.available); // as rendered by the server
  }

  // Resolves the Softphone, or null (no settings, no live button, service down).
  get() {
    if (this.phone) return this.phone;
    if (!this.config || !this.page.hasLiveWidgets() || !this.available()) return Promise.resolve(null);
    const config = this.config;
    const page = this.page;
    this.phone = import("../softphone/index.mjs").then(
      guard((module) => {
        const phone = new module.Softphone({
          ...config,
          hooks: {
            onState: (state, error) => this.onState(state, error),
            onAgentCall: (callId, session) => {
              const widget = page.calls.get(String(callId));
              if (widget) widget.attachSession(session, module.CallControls);
            },
            onIncoming: (session) => new module.Ringer(session),
          },
        });
        this.instance = phone;
        phone.start();
        return phone;
      }),
      (e) => {
        this.block("sdk_load_failed", e);
        return null;
      }
    );
    return this.phone;
  }

  // The service is (back) up: start, or retry a failed login.
  serviceUp() {
    this.get()
      .then(guard((phone) => phone && phone.start()))
      .catch((e) => warn("softphone start failed", e));
  }

  onState(state, error) {
    if (state === "error" && error) this.block(error.code);
    else if (state === "ready" && this.blocked && !this.blocked.code.startsWith("microphone")) this.unblock();
  }

  // One line in place of every call button; no call can be placed until it clears.
  block(code, detail) {
    if (!code || code === "busy") return;
    if (detail) warn("softphone." + code, detail);
    this.blocked = { code, text: errorText(code) };
    for (const widget of this.page.widgets) widget.setBlocked(this.blocked);
    if (code.startsWith("microphone")) this.watchMicrophone();
  }

  unblock() {
    this.blocked = null;
    for (const widget of this.page.widgets) widget.setBlocked(null);
  }

  // The person may allow the microphone later (site settings): the buttons come back.
  watchMicrophone() {
    const perms = window.navigator.permissions;
    if (this.micWatch || !perms || !perms.query) return;
    this.micWatch = true;
    perms
      .query({ name: "microphone" })
      .then(
        guard((status) => {
          status.onchange = guard(() => {
            const mic = this.blocked && this.blocked.code.startsWith("microphone");
            if (status.state !== "denied" && mic) this.unblock();
          });
        })
      )
      .catch(() => {
        this.micWatch = false;
      });
  }

  snapshot() {
    if (this.blocked) return { state: "error", error: this.blocked.code };
    return this.instance ? this.instance.snapshot() : { state: "", error: "" };
  }
}
