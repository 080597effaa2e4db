/*
 * The addresses the call buttons talk to, built from the data-tel-* attributes.
 * DOM-free: the page location is passed in. Unit-tested under Node.
 */

export function callAddress(callUrl, id) {
  return callUrl + "/" + encodeURIComponent(id);
}

export function hangupAddress(callUrl, id) {
  return callAddress(callUrl, id) + "/hangup";
}

export function recordingAddress(callUrl, id) {
  return callAddress(callUrl, id) + "/recording";
}

// A WebSocket URL from a path (/ws/webrtc/) on this page's host; ws(s):// kept as is.
export function wsAddress(path, location) {
  if (/^wss?:\/\//.test(path)) return path;
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

// The value of one cookie in a document.cookie string, or "".
export function readCookie(cookieString, name) {
  const parts = cookieString ? cookieString.split(";") : [];
  for (const raw of parts) {
    const part = raw.trim();
    if (part.substring(0, name.length + 1) === name + "=") {
      try {
        return decodeURIComponent(part.substring(name.length + 1));
      } catch (e) {
        return part.substring(name.length + 1);
      }
    }
  }
  return "";
}
