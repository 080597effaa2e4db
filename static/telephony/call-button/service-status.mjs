/*
 * The telephony service's state as the page shows it: the label of a
 * data-tel-service-status badge and the one announcement per change. DOM-free,
 * unit-tested under Node.
 */

const LABELS = Object.freeze({
  starting: "Starting…",
  ready: "Ready",
  degraded: "Degraded",
  unavailable: "Unavailable",
  failed: "Failed",
  stopped: "Stopped",
});

// A state word for people; an unknown word is shown as it is.
export function serviceLabel(status) {
  return Object.prototype.hasOwnProperty.call(LABELS, status) ? LABELS[status] : status;
}

// The state word to keep: the one given, else what healthy implies.
export function serviceStatus(healthy, status) {
  return status || (healthy ? "ready" : "unavailable");
}

/*
 * What the page-level live region says when the state changes from wasHealthy to
 * healthy, or "" (no change, or the first reading: nothing to announce). Only pages with
 * a live button announce anything.
 */
export function announcement(wasHealthy, healthy, { liveButtons = true } = {}) {
  if (wasHealthy === null || wasHealthy === undefined) return "";
  if (wasHealthy === healthy || !liveButtons) return "";
  return healthy ? "Calling is available again." : "Calling is unavailable right now.";
}

// The health in a status poll's answer: its boolean healthy, else false (the web server
// is unreachable or does not answer JSON, which counts as unavailable).
export function healthFromStatusAnswer(res) {
  if (res.body && typeof res.body.healthy === "boolean") {
    return { healthy: res.body.healthy, status: res.body.status };
  }
  return { healthy: false, status: "unavailable" };
}
