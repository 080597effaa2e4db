/*
 * JSON requests to /api/webrtc/. Resolves {status, body, retryAfter}, status 0 when the
 * network failed or the request timed out; never rejects.
 */
import { config } from "./config.mjs";
import { later } from "./guard.mjs";
import { readCookie } from "./urls.mjs";

// Django's CSRF token: the cookie (CSRF_COOKIE_NAME), else a {% csrf_token %} input.
export function csrfToken(cookieName) {
  let token = readCookie(document.cookie, cookieName || "csrftoken");
  if (!token) {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    token = input ? input.value : "";
  }
  return token;
}

export function api(method, url, payload, cookieName) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken(cookieName);
  if (payload !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(payload);
  }
  let abort = 0;
  if (window.AbortController) {
    const controller = new window.AbortController();
    init.signal = controller.signal;
    abort = later(() => controller.abort(), config.requestTimeoutMs);
  }
  return window
    .fetch(url, init)
    .then((res) =>
      res.text().then((text) => {
        let body = null;
        try {
          body = text ? JSON.parse(text) : null;
        } catch (e) {
          body = null;
        }
        return { status: res.status, body, retryAfter: res.headers.get("Retry-After") };
      })
    )
    .catch(() => ({ status: 0, body: null, retryAfter: null }))
    .then((result) => {
      if (abort) window.clearTimeout(abort);
      return result;
    });
}
