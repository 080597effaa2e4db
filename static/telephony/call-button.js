/*
 * Call buttons rendered by {% call_button %} (see docs/FRONTEND.md).
 *
 * An ES module, loaded with <script type="module">; no framework, no build step. It
 * imports the small modules in ./call-button/: the DOM-free ones (call-status, reasons,
 * backoff, service-status, urls, early, guard, config) are unit-tested under Node
 * (tests/js/), the others drive the page (api, widget, page).
 *
 * Progressive enhancement: the server renders a real <button> (service available) or
 * "Calls unavailable" text, and this module makes them work and keeps them current.
 * Every entry point is wrapped so that nothing in here can break the host page; the only
 * global is window.TelephonyCallButtons.
 *
 *   click        POST {callUrl} {"to": number} with X-CSRFToken (csrftoken cookie)
 *   progress     WebSocket call.update messages; GET {callUrl}/<id> while the socket is down
 *   hang up      POST {callUrl}/<id>/hangup
 *   service      WebSocket service.state messages; GET {statusUrl} every few seconds
 *                while the socket is down. Unhealthy: every idle button on the page turns
 *                into "Calls unavailable"; healthy again: the buttons come back.
 */
import { config, VERSION } from "./call-button/config.mjs";
import { guard, warn } from "./call-button/guard.mjs";
import { Page } from "./call-button/page.mjs";

function install() {
  const existing = window.TelephonyCallButtons;
  if (existing && existing.version) {
    // Another copy already runs (the same file under a second URL): pick up new buttons.
    existing.scan();
    return;
  }
  const page = new Page();
  window.TelephonyCallButtons = {
    version: VERSION,
    config,
    scan: guard(() => page.scan()),
    state: () => page.snapshot(),
  };
  // Module scripts run after the document is parsed; "loading" only if injected early.
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", guard(() => page.start()));
  } else {
    page.start();
  }
}

try {
  install();
} catch (e) {
  warn("could not start", e);
}
