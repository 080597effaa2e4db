/*
 * Why a request failed, for people, from the API's answer {status, body, retryAfter}
 * (status 0: the network failed). The caller puts "Call failed: " or "Could not hang
 * up: " in front. DOM-free, unit-tested under Node.
 */

// Retry-After in whole seconds, or 0 when absent or not a positive number.
export function retryAfterSeconds(header) {
  const wait = parseInt(header, 10);
  return wait > 0 ? wait : 0;
}

// How long the call button stays disabled after a 429 (Retry-After, else 10 s).
export function cooldownMs(header, fallbackSeconds = 10) {
  return (retryAfterSeconds(header) || fallbackSeconds) * 1000;
}

export function reasonFor(res) {
  const code = res.body && res.body.code;
  const wait = retryAfterSeconds(res.retryAfter);
  switch (res.status) {
    case 0:
      return "network error, check your connection";
    case 400:
      return code === "invalid_number" ? "that number is not valid" : "the request was refused";
    case 401:
      return "your session has ended, log in again";
    case 403:
      return code === "destination_not_allowed"
        ? "calls to this number are not allowed"
        : "the security check failed, reload the page";
    case 404:
      return "the call no longer exists";
    case 409:
      return code === "seat_limit"
        ? "all telephony seats are taken by agents who are online, try again when one of them leaves"
        : "the request conflicts with another one";
    case 429:
      return "too many calls, try again " + (wait ? "in " + wait + " s" : "shortly");
    case 502:
      return "the phone provider had a problem";
    case 503:
      return "calls are unavailable right now";
    case 504:
      return "telephony did not respond in time";
    default:
      return "something went wrong (HTTP " + res.status + ")";
  }
}

// Whether an answer says to re-read the service state at once (503, or no network).
export function suggestsOutage(res) {
  return res.status === 503 || res.status === 0;
}
