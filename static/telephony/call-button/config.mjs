/*
 * The intervals of the call buttons, in ms. One mutable object, exposed as
 * window.TelephonyCallButtons.config: every timer reads it when it is set, so a page may
 * tune it after loading and the change applies from the next timer.
 */
export const config = {
  statusPollMs: 4000, // GET /status while the WebSocket is down
  callPollMs: 2000, // GET /call/<id> for live calls while the WebSocket is down
  slowCallPollMs: 15000, // ... and now and then even when it is up (pushes are best effort)
  backoffMinMs: 1000,
  backoffMaxMs: 30000,
  pingMs: 20000, // WebSocket keepalive; no answer within pongTimeoutMs: reconnect
  pongTimeoutMs: 10000,
  requestTimeoutMs: 15000, // the server answers within TELEPHONY_REQUEST_TIMEOUT (10 s)
};

export const VERSION = "1.0.0";
