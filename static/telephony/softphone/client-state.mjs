/*
 * The agent leg's client_state: which of our calls an invite belongs to. The worker
 * dials sip:<agent>@sip.telnyx.com with client_state = base64(JSON {"call": "<uuid>",
 * "leg": "agent"}) (docs/FRONTEND.md, "The softphone"); Telnyx hands it to the page in
 * the invite. Everything about that encoding lives here, so a change of shape is one
 * edit. DOM-free: unit-tested under Node (tests/js/softphone-intents.test.mjs).
 */

export const AGENT_LEG = "agent";

function base64ToText(raw) {
  // Standard and URL-safe alphabets, padding optional: Telnyx passes the string through.
  let b64 = String(raw).trim().replace(/-/g, "+").replace(/_/g, "/");
  while (b64.length % 4) b64 += "=";
  const binary = globalThis.atob(b64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

// {call, leg} from a client_state, or null when it is absent or not ours. Never throws.
export function decodeClientState(raw) {
  if (typeof raw !== "string" || !raw || raw.length > 4096) return null;
  try {
    const data = JSON.parse(base64ToText(raw));
    if (!data || typeof data !== "object" || Array.isArray(data)) return null;
    const call = data.call;
    if (typeof call !== "string" || !call || call.length > 100) return null;
    const leg = typeof data.leg === "string" ? data.leg : "";
    return { call, leg };
  } catch (e) {
    return null;
  }
}

// The client_state the worker sends, for tests and for tools that play the worker.
export function encodeClientState(call, leg = AGENT_LEG) {
  const bytes = new TextEncoder().encode(JSON.stringify({ call: String(call), leg }));
  return globalThis.btoa(String.fromCharCode(...bytes));
}

// The client_state of an SDK call object (the SDK copies the invite's into options).
export function clientStateOf(call) {
  const options = (call && call.options) || {};
  return options.clientState || options.client_state || (call && call.clientState) || null;
}
