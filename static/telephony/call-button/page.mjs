/*
 * Everything the call buttons of one page share: the service state (one WebSocket, or
 * polling while it is down), the calls in progress, and finding buttons added later.
 * One instance per page, made by the entry module (call-button.js).
 */
import { api } from "./api.mjs";
import { reconnectDelay } from "./backoff.mjs";
import { config } from "./config.mjs";
import { EarlyUpdates } from "./early.mjs";
import { guard, later, warn } from "./guard.mjs";
import { PhoneLink } from "./phone-link.mjs";
import { announcement, healthFromStatusAnswer, serviceLabel, serviceStatus } from "./service-status.mjs";
import { wsAddress } from "./urls.mjs";
import { Widget } from "./widget.mjs";

const PENDING = "[data-tel-call]:not([data-tel-ready])";

export class Page {
  constructor() {
    this.widgets = [];
    this.calls = new Map(); // call id -> Widget
    this.early = new EarlyUpdates();
    this.service = { healthy: null, status: "" };
    this.urls = { status: "", ws: "" };
    this.started = false;
    this.socket = null;
    this.socketOpen = false;
    this.backoff = 0;
    this.timers = { reconnect: 0, status: 0, calls: 0, ping: 0, pong: 0 };
    this.announcer = null;
    this.link = new PhoneLink(this);
  }

  // -- the softphone (static/telephony/softphone/, see phone-link.mjs) ----------------------

  softphone() {
    return this.link.get();
  }

  block(code, detail) {
    this.link.block(code, detail);
  }

  // -- what widgets ask of the page --------------------------------------------------------

  trackCall(id, widget) {
    this.calls.set(id, widget);
  }

  untrackCall(id) {
    this.calls.delete(id);
  }

  takeEarlyUpdate(id) {
    return this.early.take(id);
  }

  // -- service state -----------------------------------------------------------------------

  announce(text) {
    if (!this.announcer) {
      this.announcer = document.createElement("div");
      this.announcer.className = "tel-sr-only";
      this.announcer.setAttribute("role", "status");
      this.announcer.setAttribute("aria-live", "polite");
      document.body.appendChild(this.announcer);
    }
    this.announcer.textContent = text;
  }

  setService(healthy, status) {
    const was = this.service.healthy;
    this.service.healthy = healthy;
    this.service.status = serviceStatus(healthy, status);
    this.prune();
    for (const widget of this.widgets) widget.setAvailable(healthy);
    if (healthy) this.link.serviceUp(); // starts it, or retries a failed login
    for (const label of document.querySelectorAll("[data-tel-service-status]")) {
      label.textContent = serviceLabel(this.service.status);
      label.setAttribute("data-tel-service", this.service.status);
    }
    document.documentElement.setAttribute("data-tel-service", this.service.status);
    const said = announcement(was, healthy, { liveButtons: this.hasLiveWidgets() });
    if (said) this.announce(said);
  }

  refreshStatus() {
    if (!this.urls.status) return;
    this.beatPresence();
    api("GET", this.urls.status)
      .then(
        guard((res) => {
          if (this.socketOpen) return; // the socket is the fresher source
          const { healthy, status } = healthFromStatusAnswer(res);
          this.setService(healthy, status);
        })
      )
      .catch((e) => warn("status poll failed", e));
  }

  scheduleStatusPoll() {
    window.clearTimeout(this.timers.status);
    if (this.socketOpen) return;
    this.timers.status = later(() => {
      this.refreshStatus();
      this.scheduleStatusPoll();
    }, config.statusPollMs);
  }

  // While the WebSocket is down, the status poll also tells the server that this page is
  // still open (POST /api/webrtc/presence, at most every 20 s): that keeps the agent's
  // telephony seat, which the open socket keeps otherwise.
  beatPresence() {
    const url = this.urls.status.replace(/status$/, "presence");
    const now = Date.now();
    if (this.socketOpen || url === this.urls.status || now - (this.presenceAt || 0) < 20000) return;
    this.presenceAt = now;
    api("POST", url).catch((e) => warn("presence heartbeat failed", e));
  }

  scheduleCallPoll() {
    window.clearTimeout(this.timers.calls);
    if (!this.calls.size) return;
    this.timers.calls = later(
      () => {
        this.pollCalls();
        this.scheduleCallPoll();
      },
      this.socketOpen ? config.slowCallPollMs : config.callPollMs
    );
  }

  pollCalls() {
    for (const widget of [...this.calls.values()]) widget.poll();
  }

  // -- WebSocket ---------------------------------------------------------------------------

  onMessage(event) {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    window.clearTimeout(this.timers.pong);
    if (msg.type === "service.state" && msg.state) {
      this.setService(msg.state.healthy === true, msg.state.status);
    } else if (msg.type === "call.update" && msg.call && msg.call.id) {
      const widget = this.calls.get(String(msg.call.id));
      if (widget) widget.update(msg.call);
      else this.early.remember(msg.call);
    }
  }

  connect() {
    window.clearTimeout(this.timers.reconnect);
    if (this.socket || !this.urls.ws || !window.WebSocket) return;
    let ws;
    try {
      ws = new window.WebSocket(wsAddress(this.urls.ws, window.location));
    } catch (e) {
      warn("WebSocket unavailable", e);
      this.scheduleStatusPoll();
      return;
    }
    this.socket = ws;
    ws.onopen = guard(() => {
      this.socketOpen = true;
      this.backoff = 0;
      window.clearTimeout(this.timers.status);
      this.keepAlive();
      this.pollCalls(); // catch up on anything missed while the socket was down
      this.scheduleCallPoll();
    });
    ws.onmessage = guard((event) => this.onMessage(event));
    ws.onerror = guard(() => {
      /* onclose follows and does the work */
    });
    ws.onclose = guard((event) => {
      if (this.socket !== ws) return;
      this.socket = null;
      this.socketOpen = false;
      window.clearTimeout(this.timers.ping);
      window.clearTimeout(this.timers.pong);
      this.refreshStatus();
      this.scheduleStatusPoll();
      this.scheduleCallPoll();
      this.backoff = reconnectDelay(this.backoff, event && event.code, config);
      this.timers.reconnect = later(() => this.connect(), this.backoff);
    });
  }

  keepAlive() {
    window.clearTimeout(this.timers.ping);
    this.timers.ping = later(() => {
      if (!this.socket || !this.socketOpen) return;
      const ws = this.socket;
      ws.send(JSON.stringify({ type: "ping" }));
      this.timers.pong = later(() => {
        if (this.socket === ws) ws.close(); // silent socket: onclose reconnects
      }, config.pongTimeoutMs);
      this.keepAlive();
    }, config.pingMs);
  }

  reconnectNow() {
    if (this.socket) return;
    this.backoff = 0;
    this.connect();
  }

  // -- buttons -----------------------------------------------------------------------------

  prune() {
    this.widgets = this.widgets.filter((w) => w.root.isConnected || w.call);
  }

  hasLiveWidgets() {
    return this.widgets.some((w) => w.live);
  }

  scan(root) {
    for (const node of (root || document).querySelectorAll(PENDING)) {
      try {
        const widget = new Widget(node, this);
        this.widgets.push(widget);
        if (widget.live && this.service.healthy !== null) widget.setAvailable(this.service.healthy);
        if (!this.urls.status) this.urls.status = node.getAttribute("data-tel-status-url") || "";
        if (!this.urls.ws) this.urls.ws = node.getAttribute("data-tel-ws-url") || "";
        this.link.adopt(node, widget);
      } catch (e) {
        warn("could not set up a call button", e);
      }
    }
    if (this.hasLiveWidgets()) this.softphone().catch((e) => warn("softphone start failed", e));
    if (!this.started && this.hasLiveWidgets()) {
      this.started = true;
      this.connect();
      if (!this.socket) this.scheduleStatusPoll();
    }
  }

  // Buttons added later (htmx, a fetched fragment). Only insertions that bring call
  // buttons matter, not our own status and timer updates.
  watchForNewButtons() {
    if (!window.MutationObserver || !document.body) return;
    let pending = false;
    const addsButtons = (mutations) =>
      mutations.some((m) =>
        [...m.addedNodes].some(
          (node) =>
            node.nodeType === 1 &&
            ((node.hasAttribute("data-tel-call") && !node.hasAttribute("data-tel-ready")) ||
              node.querySelector(PENDING))
        )
      );
    new window.MutationObserver(
      guard((mutations) => {
        if (pending || !addsButtons(mutations)) return;
        pending = true;
        later(() => {
          pending = false;
          this.scan();
        }, 50);
      })
    ).observe(document.body, { childList: true, subtree: true });
  }

  start() {
    this.scan();
    this.watchForNewButtons();
    window.addEventListener("online", guard(() => this.reconnectNow()));
    window.addEventListener(
      "pageshow",
      guard((event) => {
        if (event.persisted && this.started) {
          this.refreshStatus();
          this.reconnectNow();
        }
      })
    );
  }

  // What window.TelephonyCallButtons.state() reports.
  snapshot() {
    return {
      healthy: this.service.healthy,
      status: this.service.status,
      socket: this.socketOpen,
      softphone: this.link.snapshot(),
    };
  }
}
