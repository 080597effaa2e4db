/*
 * Call buttons rendered by {% call_button %} (see docs/FRONTEND.md).
 *
 * Plain JavaScript, no framework, no build step. Progressive enhancement: the server
 * renders a real <button> (service available) or "Calls unavailable" text, and this
 * script makes them work and keeps them current. Every entry point is wrapped so that
 * nothing in here can break the host page; the only global is window.TelephonyCallButtons.
 *
 *   click        POST {callUrl} {"to": number} with X-CSRFToken (csrftoken cookie)
 *   progress     WebSocket call.update messages; GET {callUrl}/<id> while the socket is down
 *   hang up      POST {callUrl}/<id>/hangup
 *   service      WebSocket service.state messages; GET {statusUrl} every few seconds
 *                while the socket is down. Unhealthy: every idle button on the page turns
 *                into "Calls unavailable"; healthy again: the buttons come back.
 */
(function (window, document) {
  "use strict";

  try {
    if (window.TelephonyCallButtons && window.TelephonyCallButtons.version) {
      window.TelephonyCallButtons.scan(); // loaded twice (e.g. a fragment): just pick up new buttons
      return;
    }
  } catch (e) {
    return;
  }

  var config = {
    statusPollMs: 4000, // GET /status while the WebSocket is down
    callPollMs: 2000, // GET /call/<id> for live calls while the WebSocket is down
    slowCallPollMs: 15000, // ... and now and then even when it is up (pushes are best effort)
    backoffMinMs: 1000,
    backoffMaxMs: 30000,
    pingMs: 20000, // WebSocket keepalive; no answer within pongTimeoutMs: reconnect
    pongTimeoutMs: 10000,
    requestTimeoutMs: 15000, // the server answers within TELEPHONY_REQUEST_TIMEOUT (10 s)
  };

  var UNAVAILABLE_TEXT = "Calls unavailable";
  var PHONE_ICON =
    '<svg class="tel-call__icon" aria-hidden="true" focusable="false" viewBox="0 0 24 24" ' +
    'width="16" height="16"><path fill="currentColor" d="M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2' +
    "-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4" +
    'a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z"/></svg>';
  var RANK = { queued: 0, unknown: 0, dialing: 1, ringing: 2, answered: 3, completed: 4, failed: 4 };
  var STATUS_TEXT = {
    starting: "Starting…",
    ready: "Ready",
    degraded: "Degraded",
    unavailable: "Unavailable",
    failed: "Failed",
    stopped: "Stopped",
  };
  var CAUSES = {
    normal_clearing: "",
    unspecified: "",
    originator_cancel: "cancelled",
    cancelled: "cancelled",
    user_busy: "the line is busy",
    busy: "the line is busy",
    no_answer: "no answer",
    timeout: "no answer",
    call_rejected: "the call was rejected",
    unallocated_number: "the number is not in service",
    destination_out_of_order: "the line is out of order",
    normal_temporary_failure: "a temporary network failure",
    worker_timeout: "telephony did not respond in time",
    worker_lost: "telephony lost track of the call",
    ended_unobserved: "the call ended without a report",
    deadline_exceeded: "telephony did not respond in time",
    service_unavailable: "calls are unavailable right now",
    no_worker: "calls are unavailable right now",
    redis_unreachable: "calls are unavailable right now",
    circuit_open: "the phone provider is failing",
    provider_error: "the phone provider had a problem",
    connection_failed: "the phone provider could not be reached",
  };

  var widgets = [];
  var calls = {}; // call id -> Widget
  var early = {}; // call id -> {call, at}: updates that arrived before the POST answered
  var service = { healthy: null, status: "" };
  var urls = { status: "", ws: "" };
  var started = false;
  var socket = null;
  var socketOpen = false;
  var backoff = 0;
  var timers = { reconnect: 0, status: 0, calls: 0, ping: 0, pong: 0 };
  var announcer = null;

  // -- safety ----------------------------------------------------------------------------

  function warn(message, err) {
    try {
      if (window.console && window.console.warn) {
        window.console.warn("[telephony] " + message, err || "");
      }
    } catch (e) {
      /* nothing left to do */
    }
  }

  // Wrap a callback so that an error in it is logged, never thrown into the host page.
  function guard(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (e) {
        warn("unexpected error", e);
        return undefined;
      }
    };
  }

  function later(fn, ms) {
    return window.setTimeout(guard(fn), ms);
  }

  // -- HTTP ------------------------------------------------------------------------------

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i].trim();
      if (part.substring(0, name.length + 1) === name + "=") {
        return decodeURIComponent(part.substring(name.length + 1));
      }
    }
    return "";
  }

  function csrfToken(cookieName) {
    var token = cookie(cookieName || "csrftoken");
    if (!token) {
      var input = document.querySelector("input[name=csrfmiddlewaretoken]");
      token = input ? input.value : "";
    }
    return token;
  }

  // Resolves {status, body, retryAfter}; status 0 means the network failed. Never rejects.
  function api(method, url, payload, cookieName) {
    var headers = { Accept: "application/json" };
    var init = { method: method, headers: headers, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = csrfToken(cookieName);
    }
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    var abort = null;
    if (window.AbortController) {
      var controller = new window.AbortController();
      init.signal = controller.signal;
      abort = later(function () {
        controller.abort();
      }, config.requestTimeoutMs);
    }
    return window
      .fetch(url, init)
      .then(function (res) {
        return res.text().then(function (text) {
          var body = null;
          try {
            body = text ? JSON.parse(text) : null;
          } catch (e) {
            body = null;
          }
          return { status: res.status, body: body, retryAfter: res.headers.get("Retry-After") };
        });
      })
      .catch(function () {
        return { status: 0, body: null, retryAfter: null };
      })
      .then(function (result) {
        if (abort) window.clearTimeout(abort);
        return result;
      });
  }

  // Why a request failed, for people (the caller puts "Call failed: " etc. in front).
  function reasonFor(res) {
    var code = res.body && res.body.code;
    var wait = parseInt(res.retryAfter, 10);
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
      case 429:
        return "too many calls, try again " + (wait > 0 ? "in " + wait + " s" : "shortly");
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

  function causeOf(call) {
    var key = call.error_code || call.hangup_cause || "";
    if (Object.prototype.hasOwnProperty.call(CAUSES, key)) return CAUSES[key];
    return key.replace(/_/g, " ");
  }

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var s = seconds % 60;
    return Math.floor(seconds / 60) + ":" + (s < 10 ? "0" : "") + s;
  }

  // -- one button --------------------------------------------------------------------------

  function Widget(root) {
    this.root = root;
    this.number = root.getAttribute("data-tel-number") || "";
    var reason = root.getAttribute("data-tel-reason") || "";
    // Anonymous users, invalid and forbidden numbers stay plain text whatever the state.
    this.live = !!this.number && (reason === "" || reason === "service" || reason === "error");
    this.label = root.getAttribute("data-tel-label") || "Call";
    this.display = root.getAttribute("data-tel-display") || this.number;
    this.ariaLabel = root.getAttribute("data-tel-aria-label") || this.label + " " + this.display;
    this.callUrl = root.getAttribute("data-tel-call-url") || "/api/webrtc/call";
    this.cookieName = root.getAttribute("data-tel-csrf-cookie") || "csrftoken";
    this.available = root.getAttribute("data-tel-state") === "available";
    this.call = null; // {id, status, rank, answeredAt, hangingUp}
    this.busy = false; // the POST that places a call is in flight
    this.coolUntil = 0; // after a 429
    this.keepFocus = false; // the focus was in this widget before we disabled something
    this.tick = 0;
    this.region = root.querySelector(".tel-call__status");
    if (!this.region) {
      this.region = document.createElement("span");
      this.region.className = "tel-call__status";
      this.region.setAttribute("role", "status");
      this.region.setAttribute("aria-live", "polite");
      root.appendChild(this.region);
    }
    this.timer = document.createElement("span");
    this.timer.className = "tel-call__timer";
    this.timer.setAttribute("aria-hidden", "true");
    this.timer.hidden = true;
    root.insertBefore(this.timer, this.region.nextSibling);
    this.bind(root.querySelector("button.tel-call__button"));
    root.setAttribute("data-tel-ready", "");
  }

  Widget.prototype.bind = function (button) {
    var self = this;
    this.button = button;
    if (button && !button.getAttribute("data-tel-bound")) {
      button.setAttribute("data-tel-bound", "");
      button.addEventListener(
        "click",
        guard(function () {
          self.dial();
        })
      );
    }
  };

  Widget.prototype.say = function (text, state) {
    if (this.region.textContent !== text) this.region.textContent = text;
    this.root.setAttribute("data-tel-call-state", state || "");
  };

  // Only move the focus when it is ours or lost (on <body>), never away from the user.
  Widget.prototype.mayTakeFocus = function () {
    var active = document.activeElement;
    return !active || active === document.body || this.root.contains(active);
  };

  Widget.prototype.setAvailable = function (ok) {
    if (!this.live) return;
    this.available = ok;
    if (!this.call && !this.busy) this.renderIdle();
  };

  // The resting look: the call button, or "Calls unavailable" when the service is down.
  Widget.prototype.renderIdle = function () {
    var root = this.root;
    var refocus = this.keepFocus || root.contains(document.activeElement);
    this.keepFocus = false;
    this.removeHangup();
    if (this.available) {
      var text = root.querySelector(".tel-unavailable");
      if (text) text.parentNode.removeChild(text);
      var hint = root.querySelector(".tel-call__hint");
      if (hint) hint.parentNode.removeChild(hint);
      if (!this.button || !this.button.isConnected) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "tel-call__button";
        button.setAttribute("aria-label", this.ariaLabel);
        button.innerHTML = PHONE_ICON; // a constant, never data
        var label = document.createElement("span");
        label.className = "tel-call__label";
        label.textContent = this.label;
        button.appendChild(label);
        root.insertBefore(button, root.firstChild);
        this.bind(button);
      }
      var cooling = this.coolUntil > Date.now();
      this.button.disabled = cooling;
      root.classList.remove("tel-call--unavailable");
      root.setAttribute("data-tel-state", "available");
      if (refocus && !cooling && this.mayTakeFocus()) this.button.focus();
    } else {
      if (this.button && this.button.parentNode) this.button.parentNode.removeChild(this.button);
      this.button = null;
      var fallback = root.querySelector(".tel-unavailable");
      if (!fallback) {
        fallback = document.createElement("span");
        fallback.className = "tel-unavailable";
        fallback.textContent = UNAVAILABLE_TEXT;
        root.insertBefore(fallback, root.firstChild);
      }
      if (refocus && this.mayTakeFocus()) {
        fallback.setAttribute("tabindex", "-1");
        fallback.focus();
      }
      root.classList.add("tel-call--unavailable");
      root.setAttribute("data-tel-state", "unavailable");
    }
  };

  Widget.prototype.dial = function () {
    var self = this;
    if (this.busy || this.call || !this.available || this.coolUntil > Date.now()) return;
    this.busy = true;
    // Disabling a focused button drops the focus to <body>: remember to bring it back.
    this.keepFocus = this.root.contains(document.activeElement);
    if (this.button) this.button.disabled = true;
    this.say("Calling…", "calling");
    api("POST", this.callUrl, { to: this.number }, this.cookieName)
      .then(
        guard(function (res) {
          self.busy = false;
          if (res.status === 201 && res.body && res.body.call && res.body.call.id) {
            self.track(res.body.call);
            return;
          }
          if (res.status === 429) {
            var wait = parseInt(res.retryAfter, 10);
            self.coolUntil = Date.now() + (wait > 0 ? wait : 10) * 1000;
            later(function () {
              if (!self.call && !self.busy) self.renderIdle();
            }, self.coolUntil - Date.now() + 50);
          }
          self.say("Call failed: " + reasonFor(res), "failed");
          if (res.status === 503 || res.status === 0) refreshStatus();
          self.renderIdle();
        })
      )
      .catch(function (e) {
        warn("dial failed", e);
      });
  };

  Widget.prototype.track = function (call) {
    this.call = { id: String(call.id), status: "", rank: -1, answeredAt: 0, hangingUp: false };
    calls[this.call.id] = this;
    this.showHangup();
    this.update(call);
    var seen = early[call.id];
    if (seen) {
      delete early[call.id];
      this.update(seen.call);
    }
    scheduleCallPoll();
  };

  Widget.prototype.showHangup = function () {
    var self = this;
    if (this.hangupButton) return;
    var focusHere = this.keepFocus || this.root.contains(document.activeElement);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "tel-call__hangup";
    button.setAttribute("aria-label", "Hang up, " + this.display);
    button.textContent = "Hang up";
    button.addEventListener(
      "click",
      guard(function () {
        self.hangup();
      })
    );
    this.root.insertBefore(button, this.region);
    this.hangupButton = button;
    if (this.button) this.button.disabled = true;
    if (focusHere && this.mayTakeFocus()) button.focus();
  };

  Widget.prototype.removeHangup = function () {
    if (!this.hangupButton) return;
    if (this.hangupButton.parentNode) this.hangupButton.parentNode.removeChild(this.hangupButton);
    this.hangupButton = null;
  };

  Widget.prototype.update = function (call) {
    if (!this.call || !call || String(call.id) !== this.call.id) return;
    var rank = RANK[call.status];
    if (rank === undefined || rank < this.call.rank) return; // never backwards
    if (call.status === this.call.status) return;
    this.call.status = call.status;
    this.call.rank = rank;
    switch (call.status) {
      case "ringing":
        this.say("Ringing…", "ringing");
        break;
      case "answered":
        this.say("In call", "in-call");
        this.startTimer(call.answered_at);
        break;
      case "completed":
        var talk = call.duration_seconds;
        var cause = causeOf(call);
        this.finish(
          "Call ended" +
            (talk ? " after " + clock(talk) : "") +
            (cause && cause !== "cancelled" ? ": " + cause : ""),
          "ended"
        );
        break;
      case "failed":
        if (this.call.hangingUp) {
          this.finish("Call cancelled", "ended");
        } else {
          this.finish("Call failed: " + (causeOf(call) || "unknown reason"), "failed");
        }
        break;
      default: // queued, dialing, unknown (no answer from a worker yet: still being settled)
        this.say("Calling…", "calling");
    }
  };

  Widget.prototype.startTimer = function (answeredAt) {
    var self = this;
    var parsed = answeredAt ? Date.parse(answeredAt) : NaN;
    this.call.answeredAt = isNaN(parsed) ? Date.now() : Math.min(parsed, Date.now());
    this.timer.hidden = false;
    var show = guard(function () {
      if (self.call) self.timer.textContent = clock((Date.now() - self.call.answeredAt) / 1000);
    });
    show();
    window.clearInterval(this.tick);
    this.tick = window.setInterval(show, 1000);
  };

  Widget.prototype.finish = function (text, state) {
    window.clearInterval(this.tick);
    this.timer.hidden = true;
    this.timer.textContent = "";
    if (this.call) delete calls[this.call.id];
    this.call = null;
    this.say(text, state);
    this.renderIdle();
  };

  Widget.prototype.hangup = function () {
    var self = this;
    var call = this.call;
    if (!call || call.hangingUp) return;
    call.hangingUp = true;
    this.keepFocus = this.root.contains(document.activeElement);
    if (this.hangupButton) this.hangupButton.disabled = true;
    this.say("Hanging up…", this.root.getAttribute("data-tel-call-state"));
    var url = this.callUrl + "/" + encodeURIComponent(call.id) + "/hangup";
    api("POST", url, undefined, this.cookieName)
      .then(
        guard(function (res) {
          if (self.call !== call) return;
          if (res.status === 200 && res.body && res.body.call) {
            self.update(res.body.call);
            if (self.call === call && call.rank < 4) self.say("Hanging up…", "ending");
            return;
          }
          if (res.status === 404) {
            self.finish("Call ended", "ended");
            return;
          }
          call.hangingUp = false;
          if (self.hangupButton) {
            self.hangupButton.disabled = false;
            if (self.keepFocus && self.mayTakeFocus()) self.hangupButton.focus();
          }
          self.say("Could not hang up: " + reasonFor(res), "error");
        })
      )
      .catch(function (e) {
        warn("hangup failed", e);
      });
  };

  Widget.prototype.poll = function () {
    var self = this;
    var call = this.call;
    if (!call) return;
    api("GET", this.callUrl + "/" + encodeURIComponent(call.id))
      .then(
        guard(function (res) {
          if (self.call !== call) return;
          if (res.status === 200 && res.body && res.body.call) self.update(res.body.call);
          else if (res.status === 404) self.finish("Call ended", "ended");
        })
      )
      .catch(function (e) {
        warn("call poll failed", e);
      });
  };

  // -- the page: service state -------------------------------------------------------------

  function announce(text) {
    if (!announcer) {
      announcer = document.createElement("div");
      announcer.className = "tel-sr-only";
      announcer.setAttribute("role", "status");
      announcer.setAttribute("aria-live", "polite");
      document.body.appendChild(announcer);
    }
    announcer.textContent = text;
  }

  function setService(healthy, status) {
    var changed = service.healthy !== healthy;
    var wasKnown = service.healthy !== null;
    service.healthy = healthy;
    service.status = status || (healthy ? "ready" : "unavailable");
    prune();
    for (var i = 0; i < widgets.length; i++) widgets[i].setAvailable(healthy);
    var labels = document.querySelectorAll("[data-tel-service-status]");
    for (var j = 0; j < labels.length; j++) {
      labels[j].textContent = STATUS_TEXT[service.status] || service.status;
      labels[j].setAttribute("data-tel-service", service.status);
    }
    document.documentElement.setAttribute("data-tel-service", service.status);
    if (changed && wasKnown && liveWidgets()) {
      announce(healthy ? "Calling is available again." : "Calling is unavailable right now.");
    }
  }

  function refreshStatus() {
    if (!urls.status) return;
    api("GET", urls.status)
      .then(
        guard(function (res) {
          if (socketOpen) return; // the socket is the fresher source
          if (res.body && typeof res.body.healthy === "boolean") {
            setService(res.body.healthy, res.body.status);
          } else {
            setService(false, "unavailable"); // web server unreachable or not answering JSON
          }
        })
      )
      .catch(function (e) {
        warn("status poll failed", e);
      });
  }

  function scheduleStatusPoll() {
    window.clearTimeout(timers.status);
    if (socketOpen) return;
    timers.status = later(function () {
      refreshStatus();
      scheduleStatusPoll();
    }, config.statusPollMs);
  }

  function activeCalls() {
    var out = [];
    for (var id in calls) {
      if (Object.prototype.hasOwnProperty.call(calls, id)) out.push(calls[id]);
    }
    return out;
  }

  function scheduleCallPoll() {
    window.clearTimeout(timers.calls);
    if (!activeCalls().length) return;
    timers.calls = later(
      function () {
        var list = activeCalls();
        for (var i = 0; i < list.length; i++) list[i].poll();
        scheduleCallPoll();
      },
      socketOpen ? config.slowCallPollMs : config.callPollMs
    );
  }

  // -- the page: WebSocket ------------------------------------------------------------------

  function wsAddress(path) {
    if (/^wss?:\/\//.test(path)) return path;
    return (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + path;
  }

  function onMessage(event) {
    var msg;
    try {
      msg = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    window.clearTimeout(timers.pong);
    if (msg.type === "service.state" && msg.state) {
      setService(msg.state.healthy === true, msg.state.status);
    } else if (msg.type === "call.update" && msg.call && msg.call.id) {
      var widget = calls[msg.call.id];
      if (widget) {
        widget.update(msg.call);
      } else {
        rememberEarly(msg.call);
      }
    }
  }

  function rememberEarly(call) {
    var now = Date.now();
    for (var id in early) {
      if (Object.prototype.hasOwnProperty.call(early, id) && now - early[id].at > 60000) {
        delete early[id];
      }
    }
    var seen = early[call.id];
    if (!seen || (RANK[call.status] || 0) >= (RANK[seen.call.status] || 0)) {
      early[call.id] = { call: call, at: now };
    }
  }

  function connect() {
    window.clearTimeout(timers.reconnect);
    if (socket || !urls.ws || !window.WebSocket) return;
    var ws;
    try {
      ws = new window.WebSocket(wsAddress(urls.ws));
    } catch (e) {
      warn("WebSocket unavailable", e);
      scheduleStatusPoll();
      return;
    }
    socket = ws;
    ws.onopen = guard(function () {
      socketOpen = true;
      backoff = 0;
      window.clearTimeout(timers.status);
      keepAlive();
      // Catch up on anything missed while the socket was down.
      var list = activeCalls();
      for (var i = 0; i < list.length; i++) list[i].poll();
      scheduleCallPoll();
    });
    ws.onmessage = guard(onMessage);
    ws.onerror = guard(function () {
      /* onclose follows and does the work */
    });
    ws.onclose = guard(function (event) {
      if (socket !== ws) return;
      socket = null;
      socketOpen = false;
      window.clearTimeout(timers.ping);
      window.clearTimeout(timers.pong);
      refreshStatus();
      scheduleStatusPoll();
      scheduleCallPoll();
      // 4401: not logged in (any more); retry slowly, the user may log in in another tab.
      backoff = event && event.code === 4401 ? config.backoffMaxMs : nextBackoff();
      timers.reconnect = later(connect, backoff);
    });
  }

  function nextBackoff() {
    var base = backoff ? Math.min(backoff * 2, config.backoffMaxMs) : config.backoffMinMs;
    return Math.round(base * (0.8 + Math.random() * 0.4)); // jitter: tabs do not reconnect in step
  }

  function keepAlive() {
    window.clearTimeout(timers.ping);
    timers.ping = later(function () {
      if (!socket || !socketOpen) return;
      var ws = socket;
      ws.send(JSON.stringify({ type: "ping" }));
      timers.pong = later(function () {
        if (socket === ws) ws.close(); // silent socket: onclose reconnects
      }, config.pongTimeoutMs);
      keepAlive();
    }, config.pingMs);
  }

  function reconnectNow() {
    if (socket) return;
    backoff = 0;
    connect();
  }

  // -- start-up ---------------------------------------------------------------------------

  function prune() {
    widgets = widgets.filter(function (w) {
      return w.root.isConnected || w.call;
    });
  }

  function liveWidgets() {
    for (var i = 0; i < widgets.length; i++) if (widgets[i].live) return true;
    return false;
  }

  function scan(root) {
    var found = (root || document).querySelectorAll("[data-tel-call]:not([data-tel-ready])");
    for (var i = 0; i < found.length; i++) {
      try {
        var widget = new Widget(found[i]);
        widgets.push(widget);
        if (widget.live && service.healthy !== null) widget.setAvailable(service.healthy);
        if (!urls.status) urls.status = found[i].getAttribute("data-tel-status-url") || "";
        if (!urls.ws) urls.ws = found[i].getAttribute("data-tel-ws-url") || "";
      } catch (e) {
        warn("could not set up a call button", e);
      }
    }
    if (!started && liveWidgets()) {
      started = true;
      connect();
      if (!socket) scheduleStatusPoll();
    }
  }

  // Only insertions that bring call buttons matter (not our own status and timer updates).
  function addsButtons(mutations) {
    for (var i = 0; i < mutations.length; i++) {
      var added = mutations[i].addedNodes;
      for (var j = 0; j < added.length; j++) {
        var node = added[j];
        if (node.nodeType !== 1) continue;
        if (node.hasAttribute("data-tel-call") && !node.hasAttribute("data-tel-ready")) return true;
        if (node.querySelector("[data-tel-call]:not([data-tel-ready])")) return true;
      }
    }
    return false;
  }

  function watchForNewButtons() {
    if (!window.MutationObserver || !document.body) return;
    var pending = false;
    new window.MutationObserver(
      guard(function (mutations) {
        if (pending || !addsButtons(mutations)) return;
        pending = true;
        later(function () {
          pending = false;
          scan();
        }, 50);
      })
    ).observe(document.body, { childList: true, subtree: true });
  }

  function start() {
    scan();
    watchForNewButtons();
    window.addEventListener("online", guard(reconnectNow));
    window.addEventListener(
      "pageshow",
      guard(function (event) {
        if (event.persisted && started) {
          refreshStatus();
          reconnectNow();
        }
      })
    );
  }

  try {
    window.TelephonyCallButtons = {
      version: "1.0.0",
      config: config,
      scan: guard(function () {
        scan();
      }),
      state: function () {
        return { healthy: service.healthy, status: service.status, socket: socketOpen };
      },
    };
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", guard(start));
    } else {
      start();
    }
  } catch (e) {
    warn("could not start", e);
  }
})(window, document);
