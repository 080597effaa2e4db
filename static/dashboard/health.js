/*
 * The "Telephony health" admin page, kept live.
 *
 * The server renders the page (it works without JavaScript); this script keeps it
 * current from the staff-only JSON (data-json-url):
 *
 *   WebSocket /ws/webrtc/   every service.state push -> fetch the JSON at once; while the
 *                           socket is open, the JSON is also fetched every 5 s (worker
 *                           ages, counters and replacements that do not change the state)
 *   polling                 while the socket is down, the JSON every data-poll-ms (2.5 s)
 *   actions                 forms with data-confirm ask window.confirm() first, then POST
 *                           with confirmed=yes; without JavaScript the server asks instead
 *
 * Everything is built with textContent: nothing from the JSON is ever parsed as HTML.
 */
(function (window, document) {
  "use strict";

  var root = document.querySelector("[data-th-root]");
  if (!root) return;

  var JSON_URL = root.getAttribute("data-json-url");
  var WS_PATH = root.getAttribute("data-ws-path") || "/ws/webrtc/";
  var POLL_MS = parseInt(root.getAttribute("data-poll-ms"), 10) || 2500;
  var LIVE_REFRESH_MS = 5000;
  var BACKOFF_MIN_MS = 1000;
  var BACKOFF_MAX_MS = 30000;
  var UNAUTHENTICATED = 4401;
  var DASH = "–";

  var live = {
    socket: null,
    socketOpen: false,
    backoff: BACKOFF_MIN_MS,
    timer: null,
    fetching: false,
    again: false,
    lastOk: 0,
    failing: false,
    stopped: false,
    seenEvents: null,
  };

  // -- formats (mirror dashboard/templatetags/health_format.py) ------------------------

  function isNum(v) {
    return typeof v === "number" && isFinite(v);
  }
  function pad2(n) {
    return (n < 10 ? "0" : "") + n;
  }
  function duration(v) {
    if (!isNum(v)) return DASH;
    var t = Math.floor(v);
    var d = Math.floor(t / 86400), h = Math.floor((t % 86400) / 3600);
    var m = Math.floor((t % 3600) / 60), s = t % 60;
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + pad2(m) + " m";
    if (m) return m + " m " + pad2(s) + " s";
    return s + " s";
  }
  function age(v) {
    return isNum(v) ? v.toFixed(1) + " s ago" : DASH;
  }
  function ms(v) {
    if (!isNum(v)) return DASH;
    if (v >= 1000) return (v / 1000).toFixed(1) + " s";
    return v < 10 ? v.toFixed(1) + " ms" : Math.round(v) + " ms";
  }
  function leMs(v) {
    return isNum(v) ? "≤ " + ms(v) : DASH;
  }
  function pct(v) {
    return isNum(v) ? Math.round(v * 100) + "%" : DASH;
  }
  function mb(v) {
    return isNum(v) ? Math.round(v) + " MB" : DASH;
  }
  function dash(v) {
    return v === null || v === undefined || v === "" ? DASH : String(v);
  }
  function clock(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
  }

  // -- DOM helpers -----------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        if (attrs[name] !== null && attrs[name] !== undefined) node.setAttribute(name, attrs[name]);
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    });
    return node;
  }
  function td(text, cls) {
    return el("td", cls ? { class: cls } : null, [text]);
  }
  function badge(text, kind) {
    return el("span", { class: "th-badge th-badge--" + kind }, [text]);
  }
  function part(name) {
    return root.querySelector('[data-th="' + name + '"]');
  }
  function setText(name, text) {
    var node = part(name);
    if (node) node.textContent = text;
  }
  function fill(name, nodes) {
    var node = part(name);
    if (!node) return;
    while (node.firstChild) node.removeChild(node.firstChild);
    nodes.forEach(function (child) {
      node.appendChild(child);
    });
  }
  function emptyRow(colspan, text) {
    return el("tr", { class: "th-empty" }, [el("td", { colspan: colspan }, [text])]);
  }

  // -- rendering -------------------------------------------------------------------------

  function renderService(s) {
    part("banner").className = "th-banner th-banner--" + s.status;
    setText("status", s.label);
    setText("summary", s.summary);
    setText("alive", s.alive);
    setText("desired", s.desired);
    setText("breaker-mode", s.breaker_forced ? "forced " + s.breaker_forced : "automatic");
    var mode = s.breaker_forced || "auto";
    root.querySelectorAll("[data-breaker]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-breaker") === mode));
    });
    var reset = part("reset-button");
    if (reset) reset.classList.toggle("th-button--primary", s.status === "failed");
    document.title = s.label + " · Telephony health";
  }

  function renderCards(data) {
    var lat = data.latency, calls = data.calls_today, cred = data.credentials;
    setText("p50", ms(lat.p50_ms));
    setText("p99", ms(lat.p99_ms));
    setText(
      "latency-sub",
      lat.window ? "p50 / p99 over the last " + lat.window + " requests" : "no requests yet"
    );
    setText("errors-total", lat.errors_total);
    var top = Object.keys(lat.errors).slice(0, 2).map(function (code) {
      return code + " " + lat.errors[code];
    });
    setText("errors-top", top.length ? top.join(" · ") : "none in the workers' windows");
    setText("calls-placed", calls.placed);
    setText("calls-answered", calls.answered);
    setText("calls-failed", calls.failed);
    setText("calls-avg", duration(calls.avg_duration_s));
    setText("cred-in-use", cred.in_use);
    if (cred.limit) setText("cred-limit", cred.limit);
    var meter = part("cred-meter");
    if (meter && cred.limit) {
      meter.setAttribute("aria-valuenow", cred.in_use);
      meter.setAttribute("data-level", cred.level || "ok");
      meter.firstElementChild.style.width = (cred.percent || 0) + "%";
    }
  }

  function renderWorkers(workers) {
    setText("workers-count", workers.length);
    if (!workers.length) return fill("workers", [emptyRow(12, "No worker is running.")]);
    fill(
      "workers",
      workers.map(function (w) {
        var b = w.breaker, lat = w.latency;
        var circuit = b
          ? el("td", null, [
              badge(b.state.replace("_", ""), b.state),
              " ",
              el("span", { class: "th-quiet", title: "failure rate over the breaker's window" }, [
                pct(b.failure_rate) + " failing",
              ]),
              b.forced ? el("span", { class: "th-quiet" }, [" · forced " + b.forced]) : null,
            ])
          : td(DASH);
        return el("tr", { "data-worker-id": w.id, "data-pid": w.pid }, [
          el("td", null, [el("strong", null, [dash(w.pid)])]),
          td(dash(w.host)),
          el("td", null, [badge(w.state, w.state)]),
          td(duration(w.uptime_s)),
          td(age(w.beat_age_s)),
          td(dash(w.handled), "th-num"),
          td(dash(w.failed), "th-num"),
          td(dash(w.in_flight), "th-num"),
          td(mb(w.rss_mb), "th-num"),
          circuit,
          td(ms(lat && lat.p50_ms) + " / " + ms(lat && lat.p99_ms), "th-num"),
          td(dash(w.supervisor_id), "th-quiet"),
        ]);
      })
    );
  }

  function renderSupervisors(supervisors) {
    setText("supervisors-count", supervisors.length);
    if (!supervisors.length) return fill("supervisors", [emptyRow(8, "No supervisor has reported.")]);
    fill(
      "supervisors",
      supervisors.map(function (s) {
        return el("tr", { "data-supervisor-id": s.id }, [
          el("td", null, [el("strong", null, [dash(s.id)])]),
          el("td", null, [badge(s.state, s.state)]),
          td(s.alive + " / " + s.desired, "th-num"),
          td(dash(s.restarts), "th-num"),
          td(dash(s.restarts_in_window), "th-num"),
          td(duration(s.uptime_s)),
          td(s.last_event ? dash(s.last_event.message) : DASH, "th-quiet"),
          td(age(s.updated_age_s)),
        ]);
      })
    );
  }

  function renderOps(lat) {
    if (!lat.ops.length) return fill("ops", [emptyRow(6, "No request handled yet.")]);
    fill(
      "ops",
      lat.ops.map(function (op) {
        return el("tr", null, [
          el("td", null, [el("code", null, [op.op])]),
          td(op.requests, "th-num"),
          td(op.errors, "th-num"),
          td(ms(op.mean_ms), "th-num"),
          td(leMs(op.p50_le_ms), "th-num"),
          td(leMs(op.p99_le_ms), "th-num"),
        ]);
      })
    );
    var codes = Object.keys(lat.errors);
    if (!codes.length) {
      return fill("errors", [el("li", { class: "th-empty" }, ["No errors in the workers' recent windows."])]);
    }
    fill(
      "errors",
      codes.map(function (code) {
        return el("li", null, [el("code", null, [code]), el("span", { class: "th-num" }, [lat.errors[code]])]);
      })
    );
  }

  function renderEvents(events) {
    var first = live.seenEvents === null;
    var seen = live.seenEvents || {};
    live.seenEvents = {};
    if (!events.length) return fill("events", [el("li", { class: "th-empty" }, ["No events yet."])]);
    fill(
      "events",
      events.map(function (e) {
        live.seenEvents[e.id] = true;
        var cls = "th-event th-event--" + e.tone + (!first && !seen[e.id] ? " th-event--new" : "");
        return el("li", { class: cls, "data-event-id": e.id, "data-kind": e.kind }, [
          el("time", { datetime: e.at }, [clock(e.at)]),
          badge(e.title, e.tone),
          el("span", { class: "th-event__message" }, [e.message]),
          e.user ? el("span", { class: "th-event__user" }, ["by " + e.user]) : null,
        ]);
      })
    );
  }

  function render(data) {
    renderService(data.service);
    renderCards(data);
    renderWorkers(data.workers);
    renderSupervisors(data.supervisors);
    renderOps(data.latency);
    renderEvents(data.events);
  }

  // -- freshness indicator -------------------------------------------------------------

  function showMode() {
    var node = part("live");
    if (!node) return;
    var mode, text;
    if (live.stopped) {
      mode = "offline";
      text = "Signed out: reload the page";
    } else if (live.failing) {
      mode = "offline";
      text = "Cannot reach the server: retrying";
    } else if (live.socketOpen) {
      mode = "live";
      text = "Live";
    } else {
      mode = "polling";
      text = "Live updates down: polling every " + POLL_MS / 1000 + " s";
    }
    node.setAttribute("data-mode", mode);
    node.textContent = text;
    setText("updated", live.lastOk ? "updated " + age((Date.now() - live.lastOk) / 1000) : "");
  }

  // -- fetching --------------------------------------------------------------------------

  function schedule(delay) {
    if (live.timer) window.clearTimeout(live.timer);
    if (live.stopped) return;
    live.timer = window.setTimeout(refresh, delay);
  }

  function refresh() {
    if (live.stopped) return;
    if (live.fetching) {
      live.again = true;
      return;
    }
    live.fetching = true;
    window
      .fetch(JSON_URL, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (response.redirected || type.indexOf("application/json") !== 0) {
          live.stopped = true; // the admin sent us to its login page
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (!data) return;
        render(data);
        live.lastOk = Date.now();
        live.failing = false;
      })
      .catch(function () {
        live.failing = true;
      })
      .then(function () {
        live.fetching = false;
        showMode();
        if (live.again) {
          live.again = false;
          schedule(0);
        } else {
          schedule(live.socketOpen ? LIVE_REFRESH_MS : POLL_MS);
        }
      });
  }

  // -- WebSocket -------------------------------------------------------------------------

  function connect() {
    if (live.stopped || !("WebSocket" in window)) return;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket;
    try {
      socket = new window.WebSocket(scheme + window.location.host + WS_PATH);
    } catch (e) {
      return;
    }
    live.socket = socket;
    socket.onopen = function () {
      live.socketOpen = true;
      live.backoff = BACKOFF_MIN_MS;
      showMode();
    };
    socket.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (message && message.type === "service.state") refresh();
    };
    socket.onclose = function (event) {
      var wasOpen = live.socketOpen;
      live.socketOpen = false;
      live.socket = null;
      showMode();
      if (wasOpen) refresh(); // what changed while it went down, and start polling
      if (event.code === UNAUTHENTICATED) return;
      window.setTimeout(connect, live.backoff);
      live.backoff = Math.min(live.backoff * 2, BACKOFF_MAX_MS);
    };
  }

  // -- confirmations -----------------------------------------------------------------------

  root.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (!question) return;
    var pressed = form.querySelector('[aria-pressed="true"]');
    if (pressed || !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (!form.querySelector('input[name="confirmed"]')) {
      form.appendChild(el("input", { type: "hidden", name: "confirmed", value: "yes" }));
    }
  });

  // -- start -------------------------------------------------------------------------------

  showMode();
  window.setInterval(showMode, 1000);
  connect();
  refresh();
})(window, document);
