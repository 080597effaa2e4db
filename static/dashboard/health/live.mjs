/*
 * The page's freshness: what the "Live / polling / cannot reach the server" indicator
 * says, and how long to wait before reconnecting the WebSocket. DOM-free, unit-tested
 * under Node.
 */
import { age } from "./format.mjs";

export const BACKOFF_MIN_MS = 1000;
export const BACKOFF_MAX_MS = 30000;
export const UNAUTHENTICATED_CLOSE = 4401;

// {mode, text} of the indicator; mode is its data-mode (styled by health.css).
export function liveMode({ stopped, failing, socketOpen }, pollMs) {
  if (stopped) return { mode: "offline", text: "Signed out: reload the page" };
  if (failing) return { mode: "offline", text: "Cannot reach the server: retrying" };
  if (socketOpen) return { mode: "live", text: "Live" };
  return { mode: "polling", text: "Live updates down: polling every " + pollMs / 1000 + " s" };
}

// "updated 2.3 s ago" since the last good fetch, "" before the first one.
export function updatedText(lastOkMs, nowMs) {
  return lastOkMs ? "updated " + age((nowMs - lastOkMs) / 1000) : "";
}

// The reconnect delay after this one: doubling, capped (one admin tab needs no jitter).
export function nextBackoff(currentMs) {
  return Math.min(currentMs * 2, BACKOFF_MAX_MS);
}

// The poll interval from data-poll-ms, else 2.5 s.
export function pollInterval(attribute) {
  return parseInt(attribute, 10) || 2500;
}
