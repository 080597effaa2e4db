/*
 * Keeping the WebRTC login token fresh without dropping a call. The token from
 * POST /api/webrtc/credential has an `expires_at`; about ten minutes before it, a new one
 * is fetched and handed to the SDK with `client.login({creds: {login_token}})` on the
 * same client and socket, which re-authenticates without touching calls (never
 * disconnect/connect). The SDK's own TOKEN_EXPIRING_SOON warning (2 minutes before the
 * token it logged in with expires) is the backstop when our timer was late (a sleeping
 * laptop, a throttled background tab). A failed refresh is retried until the token
 * actually expires.
 *
 * DOM-free: the clock, the timers, the fetch and the login are injected.
 */

export const DEFAULTS = {
  leadMs: 10 * 60_000, // refresh this long before expiry
  retryMs: 30_000, // after a failed refresh
  minDelayMs: 1_000, // never a busy loop
  warningWindowMs: 3 * 60_000, // a TOKEN_EXPIRING_SOON for a token with more left is stale
};

// Epoch ms of an ISO 8601 `expires_at` (or epoch ms / seconds), NaN when unreadable.
export function parseExpiry(value) {
  if (typeof value === "number") return value < 1e12 ? value * 1000 : value;
  if (typeof value !== "string" || !value) return NaN;
  return Date.parse(value);
}

// How long to wait before refreshing a token expiring at `expiresAtMs`; null if unknown.
// A token that lives less than twice the lead is refreshed halfway through what is left.
export function refreshDelayMs(expiresAtMs, nowMs, options = {}) {
  const { leadMs, minDelayMs } = { ...DEFAULTS, ...options };
  const remaining = expiresAtMs - nowMs;
  if (!Number.isFinite(remaining)) return null;
  const lead = remaining > 2 * leadMs ? leadMs : remaining / 2;
  return Math.max(minDelayMs, Math.round(remaining - lead));
}

export class TokenKeeper {
  /*
   * fetchCredential(): Promise<{token, expires_at, ...}>, rejects on failure.
   * login(token): Promise, the SDK re-login on the live client.
   */
  constructor({ fetchCredential, login, now, setTimer, clearTimer, log, ...options }) {
    this.fetchCredential = fetchCredential;
    this.login = login;
    this.now = now || (() => Date.now());
    this.setTimer = setTimer || ((fn, ms) => globalThis.setTimeout(fn, ms));
    this.clearTimer = clearTimer || ((id) => globalThis.clearTimeout(id));
    this.log = log || (() => {});
    this.options = { ...DEFAULTS, ...options };
    this.expiresAt = NaN;
    this.timer = null;
    this.inFlight = null;
    this.stopped = false;
    this.refreshes = 0;
  }

  // The credential the first login used: from now on, keep it fresh.
  start(credential) {
    this.stopped = false;
    this.expiresAt = parseExpiry(credential && credential.expires_at);
    this.schedule(refreshDelayMs(this.expiresAt, this.now(), this.options));
  }

  stop() {
    this.stopped = true;
    this.cancel();
  }

  cancel() {
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
  }

  schedule(delay) {
    this.cancel();
    if (this.stopped || delay === null) return;
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.refresh("schedule");
    }, delay);
  }

  // The SDK's TOKEN_EXPIRING_SOON: refresh now, unless we already did (the warning was
  // scheduled for the previous token).
  onExpiringSoon() {
    if (this.stopped) return null;
    const left = this.expiresAt - this.now();
    if (Number.isFinite(left) && left > this.options.warningWindowMs) return null;
    return this.refresh("expiring_soon");
  }

  // Fetch a new token and log in with it on the same client. One at a time.
  refresh(reason) {
    if (this.stopped) return Promise.resolve(false);
    if (this.inFlight) return this.inFlight;
    this.cancel();
    this.inFlight = Promise.resolve()
      .then(() => this.fetchCredential())
      .then((credential) => {
        if (!credential || typeof credential.token !== "string" || !credential.token) {
          throw new Error("no token in the credential answer");
        }
        return Promise.resolve(this.login(credential.token)).then(() => credential);
      })
      .then(
        (credential) => {
          this.inFlight = null;
          this.refreshes += 1;
          this.expiresAt = parseExpiry(credential.expires_at);
          this.log("token refreshed (" + reason + ")");
          this.schedule(refreshDelayMs(this.expiresAt, this.now(), this.options));
          return true;
        },
        (err) => {
          this.inFlight = null;
          this.log("token refresh failed (" + reason + ")", err);
          const left = this.expiresAt - this.now();
          const retry = this.options.retryMs;
          // Keep trying while the old token lives; once it is dead the next login fails
          // loudly anyway.
          if (!Number.isFinite(left) || left > 0) this.schedule(Math.max(retry, this.options.minDelayMs));
          return false;
        }
      );
    return this.inFlight;
  }
}
