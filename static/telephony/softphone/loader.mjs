/*
 * What the softphone needs from the browser, and the SDK itself, loaded on demand: the
 * vendored @telnyx/webrtc ES module (static/vendor/telnyx-webrtc/<version>/bundle.mjs)
 * through a dynamic import(), only once a page shows a call button and the service is
 * available. No CDN, nothing fetched from anywhere else.
 */
import { guard } from "../call-button/guard.mjs";

const LOAD_TIMEOUT_MS = 20_000;

// "" when the browser can run the softphone, else the error code to show.
export function missingSupport(win) {
  const nav = win.navigator || {};
  const media = nav.mediaDevices;
  if (!win.RTCPeerConnection || !win.WebSocket) return "webrtc_missing";
  if (!media || typeof media.getUserMedia !== "function") return "webrtc_missing";
  return "";
}

let loading = null;

// Resolves the TelnyxRTC class; rejects when the module cannot be loaded in time.
export function loadSdk(url) {
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const timer = globalThis.setTimeout(() => reject(new Error("timed out loading " + url)), LOAD_TIMEOUT_MS);
      import(url).then(
        guard((module) => {
          globalThis.clearTimeout(timer);
          const TelnyxRTC = module && (module.TelnyxRTC || (module.default && module.default.TelnyxRTC));
          if (typeof TelnyxRTC === "function") resolve(TelnyxRTC);
          else reject(new Error("no TelnyxRTC export in " + url));
        }),
        (err) => {
          globalThis.clearTimeout(timer);
          reject(err);
        }
      );
    });
    loading.catch(() => {
      loading = null; // a later start may try again
    });
  }
  return loading;
}

// Ask for the microphone (the browser's prompt, once), then let it go: the SDK opens its
// own stream when it answers. Resolves "" or an error code.
export function checkMicrophone(win) {
  return win.navigator.mediaDevices.getUserMedia({ audio: true }).then(
    (stream) => {
      for (const track of stream.getTracks()) track.stop();
      return "";
    },
    (err) => {
      const name = (err && err.name) || "";
      if (name === "NotFoundError" || name === "OverconstrainedError") return "microphone_missing";
      return "microphone_denied"; // NotAllowedError, SecurityError, anything else
    }
  );
}
