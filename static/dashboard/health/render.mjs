/*
 * Puts the JSON of /admin/telephony/health.json into the server-rendered page, part by
 * part ([data-th="..."]). Everything is built with textContent: nothing from the JSON is
 * ever parsed as HTML. The formats come from format.mjs, the same rules as the server's.
 */
import { age, dash, DASH, duration, leMs, mb, ms, pct, utcClock } from "./format.mjs";

export function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children || []) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
  return node;
}

function td(text, cls) {
  return el("td", cls ? { class: cls } : null, [text]);
}

function badge(text, kind) {
  return el("span", { class: "th-badge th-badge--" + kind }, [text]);
}

function emptyRow(colspan, text) {
  return el("tr", { class: "th-empty" }, [el("td", { colspan }, [text])]);
}

export class HealthView {
  constructor(root) {
    this.root = root;
    this.seenEvents = null; // event ids of the last render; null before the first
  }

  part(name) {
    return this.root.querySelector('[data-th="' + name + '"]');
  }

  setText(name, text) {
    const node = this.part(name);
    if (node) node.textContent = text;
  }

  fill(name, nodes) {
    const node = this.part(name);
    if (node) node.replaceChildren(...nodes);
  }

  render(data) {
    this.renderService(data.service);
    this.renderCards(data);
    this.renderWorkers(data.workers);
    this.renderSupervisors(data.supervisors);
    this.renderOps(data.latency);
    this.renderEvents(data.events);
  }

  renderService(s) {
    this.part("banner").className = "th-banner th-banner--" + s.status;
    this.setText("status", s.label);
    this.setText("summary", s.summary);
    this.setText("alive", s.alive);
    this.setText("desired", s.desired);
    this.setText("breaker-mode", s.breaker_forced ? "forced " + s.breaker_forced : "automatic");
    const mode = s.breaker_forced || "auto";
    for (const button of this.root.querySelectorAll("[data-breaker]")) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-breaker") === mode));
    }
    const reset = this.part("reset-button");
    if (reset) reset.classList.toggle("th-button--primary", s.status === "failed");
    document.title = s.label + " · Telephony health";
  }

  renderCards(data) {
    const lat = data.latency;
    const calls = data.calls_today;
    const cred = data.credentials;
    this.setText("p50", ms(lat.p50_ms));
    this.setText("p99", ms(lat.p99_ms));
    this.setText(
      "latency-sub",
      lat.window ? "p50 / p99 over the last " + lat.window + " requests" : "no requests yet"
    );
    this.setText("errors-total", lat.errors_total);
    const top = Object.keys(lat.errors)
      .slice(0, 2)
      .map((code) => code + " " + lat.errors[code]);
    this.setText("errors-top", top.length ? top.join(" · ") : "none in the workers' windows");
    this.setText("calls-placed", calls.placed);
    this.setText("calls-answered", calls.answered);
    const outcomes = calls.outcomes || {};
    this.setText("calls-completed", outcomes.completed ?? 0);
    this.setText("calls-no-answer", outcomes.no_answer ?? 0);
    this.setText("calls-busy", outcomes.busy ?? 0);
    this.setText("calls-failed", outcomes.failed ?? 0);
    this.setText("calls-canceled", outcomes.canceled ?? 0);
    this.setText("calls-avg", duration(calls.avg_duration_s));
    this.setText("cred-in-use", cred.in_use);
    if (cred.limit) this.setText("cred-limit", cred.limit);
    const meter = this.part("cred-meter");
    if (meter && cred.limit) {
      meter.setAttribute("aria-valuenow", cred.in_use);
      meter.setAttribute("data-level", cred.level || "ok");
      meter.firstElementChild.style.width = (cred.percent || 0) + "%";
    }
    const holders = (data.seats && data.seats.holders) || [];
    this.fill(
      "seat-holders",
      holders.length
        ? holders.map((h) =>
            el("li", { "data-seat-user": h.user, "data-seat-online": String(h.online ?? "unknown") }, [
              h.user + " · " + h.label,
            ])
          )
        : [el("li", null, ["no seat taken"])]
    );
  }

  renderWorkers(workers) {
    this.setText("workers-count", workers.length);
    if (!workers.length) return this.fill("workers", [emptyRow(12, "No worker is running.")]);
    return this.fill(
      "workers",
      workers.map((w) => {
        const b = w.breaker;
        const lat = w.latency;
        const circuit = b
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
          td(mb(w.rss_mb) + " / " + mb(w.pss_mb) + " / " + mb(w.uss_mb), "th-num"),
          circuit,
          td(ms(lat && lat.p50_ms) + " / " + ms(lat && lat.p99_ms), "th-num"),
          td(dash(w.supervisor_id), "th-quiet"),
        ]);
      })
    );
  }

  renderSupervisors(supervisors) {
    this.setText("supervisors-count", supervisors.length);
    if (!supervisors.length) {
      return this.fill("supervisors", [emptyRow(8, "No supervisor has reported.")]);
    }
    return this.fill(
      "supervisors",
      supervisors.map((s) =>
        el("tr", { "data-supervisor-id": s.id }, [
          el("td", null, [el("strong", null, [dash(s.id)])]),
          el("td", null, [
            badge(s.state, s.state),
            s.template
              ? el(
                  "span",
                  {
                    class: "th-quiet",
                    title: `the worker template new workers are forked from (pid ${dash(s.template.pid)})`,
                  },
                  [" template " + s.template.state],
                )
              : null,
          ]),
          td(s.alive + " / " + s.desired, "th-num"),
          td(dash(s.restarts), "th-num"),
          td(dash(s.restarts_in_window), "th-num"),
          td(duration(s.uptime_s)),
          td(s.last_event ? dash(s.last_event.message) : DASH, "th-quiet"),
          td(age(s.updated_age_s)),
        ])
      )
    );
  }

  renderOps(lat) {
    if (!lat.ops.length) return this.fill("ops", [emptyRow(6, "No request handled yet.")]);
    this.fill(
      "ops",
      lat.ops.map((op) =>
        el("tr", null, [
          el("td", null, [el("code", null, [op.op])]),
          td(op.requests, "th-num"),
          td(op.errors, "th-num"),
          td(ms(op.mean_ms), "th-num"),
          td(leMs(op.p50_le_ms), "th-num"),
          td(leMs(op.p99_le_ms), "th-num"),
        ])
      )
    );
    const codes = Object.keys(lat.errors);
    if (!codes.length) {
      return this.fill("errors", [
        el("li", { class: "th-empty" }, ["No errors in the workers' recent windows."]),
      ]);
    }
    return this.fill(
      "errors",
      codes.map((code) =>
        el("li", null, [el("code", null, [code]), el("span", { class: "th-num" }, [lat.errors[code]])])
      )
    );
  }

  renderEvents(events) {
    const first = this.seenEvents === null;
    const seen = this.seenEvents || new Set();
    this.seenEvents = new Set(events.map((e) => e.id));
    if (!events.length) return this.fill("events", [el("li", { class: "th-empty" }, ["No events yet."])]);
    return this.fill(
      "events",
      events.map((e) => {
        const cls = "th-event th-event--" + e.tone + (!first && !seen.has(e.id) ? " th-event--new" : "");
        return el("li", { class: cls, "data-event-id": e.id, "data-kind": e.kind }, [
          el("time", { datetime: e.at }, [utcClock(e.at)]),
          badge(e.title, e.tone),
          el("span", { class: "th-event__message" }, [e.message]),
          e.user ? el("span", { class: "th-event__user" }, ["by " + e.user]) : null,
        ]);
      })
    );
  }
}
