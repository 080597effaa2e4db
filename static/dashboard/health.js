/*
 * The "Telephony health" admin page, kept live.
 *
 * An ES module, loaded with <script type="module">; no build step, no globals. The
 * server renders the page (it works without JavaScript); this module keeps it current
 * from the staff-only JSON (data-json-url):
 *
 *   WebSocket /ws/webrtc/   every service.state push -> fetch the JSON at once; while the
 *                           socket is open, the JSON is also fetched every 5 s (worker
 *                           ages, counters and replacements that do not change the state)
 *   polling                 while the socket is down, the JSON every data-poll-ms (2.5 s)
 *   actions                 forms with data-confirm ask window.confirm() first, then POST
 *                           with confirmed=yes; without JavaScript the server asks instead
 *
 * ./health/format.mjs and ./health/live.mjs are DOM-free (tested under Node, tests/js/);
 * ./health/render.mjs fills the page.
 */
import { BACKOFF_MIN_MS, liveMode, nextBackoff, pollInterval, UNAUTHENTICATED_CLOSE, updatedText } from "./health/live.mjs";
import { el, HealthView } from "./health/render.mjs";

const LIVE_REFRESH_MS = 5000;

function start(root) {
  const view = new HealthView(root);
  const jsonUrl = root.getAttribute("data-json-url");
  const wsPath = root.getAttribute("data-ws-path") || "/ws/webrtc/";
  const pollMs = pollInterval(root.getAttribute("data-poll-ms"));
  const live = {
    socketOpen: false,
    backoff: BACKOFF_MIN_MS,
    timer: 0,
    fetching: false,
    again: false,
    lastOk: 0,
    failing: false,
    stopped: false,
  };

  // -- freshness indicator ---------------------------------------------------------------

  function showMode() {
    const node = view.part("live");
    if (!node) return;
    const { mode, text } = liveMode(live, pollMs);
    node.setAttribute("data-mode", mode);
    node.textContent = text;
    view.setText("updated", updatedText(live.lastOk, Date.now()));
  }

  // -- fetching --------------------------------------------------------------------------

  function schedule(delay) {
    window.clearTimeout(live.timer);
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
      .fetch(jsonUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then((response) => {
        const type = response.headers.get("Content-Type") || "";
        if (response.redirected || !type.startsWith("application/json")) {
          live.stopped = true; // the admin sent us to its login page
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then((data) => {
        if (!data) return;
        view.render(data);
        live.lastOk = Date.now();
        live.failing = false;
      })
      .catch(() => {
        live.failing = true;
      })
      .then(() => {
        live.fetching = false;
        showMode();
        if (live.again) {
          live.again = false;
          schedule(0);
        } else {
          schedule(live.socketOpen ? LIVE_REFRESH_MS : pollMs);
        }
      });
  }

  // -- WebSocket -------------------------------------------------------------------------

  function connect() {
    if (live.stopped || !("WebSocket" in window)) return;
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    let socket;
    try {
      socket = new window.WebSocket(scheme + window.location.host + wsPath);
    } catch (e) {
      return;
    }
    socket.onopen = () => {
      live.socketOpen = true;
      live.backoff = BACKOFF_MIN_MS;
      showMode();
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (message && message.type === "service.state") refresh();
    };
    socket.onclose = (event) => {
      const wasOpen = live.socketOpen;
      live.socketOpen = false;
      showMode();
      if (wasOpen) refresh(); // what changed while it went down, and start polling
      if (event.code === UNAUTHENTICATED_CLOSE) return;
      window.setTimeout(connect, live.backoff);
      live.backoff = nextBackoff(live.backoff);
    };
  }

  // -- confirmations -----------------------------------------------------------------------

  root.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.getAttribute && form.getAttribute("data-confirm");
    if (!question) return;
    const pressed = form.querySelector('[aria-pressed="true"]');
    if (pressed || !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (!form.querySelector('input[name="confirmed"]')) {
      form.appendChild(el("input", { type: "hidden", name: "confirmed", value: "yes" }));
    }
  });

  showMode();
  window.setInterval(showMode, 1000);
  connect();
  refresh();
}

const root = document.querySelector("[data-th-root]");
if (root) start(root);
