/*
 * The page's softphone: one TelnyxRTC client logged in as this agent, which answers by
 * itself the agent legs of the calls this page asked for and rings for anything else.
 * Made by the call buttons' page (call-button/page.mjs) once a button is on the page and
 * the service is available; the SDK module is loaded then, not before.
 *
 *   start     checks WebRTC, loads the SDK, POST credentialUrl, new TelnyxRTC, connect
 *   prepare   before a Call click's POST: the microphone allowed and the client ready
 *   invites   client_state -> Intents: answer / ring / leave to another tab / wait
 *   token     TokenKeeper: re-login on the same client ~10 min before expiry
 *   network   the SDK's auto-reconnect; calls are kept (keepConnectionAliveOnSocketClose)
 *
 * Failures end in PhoneState `error` with a code (logged as "softphone.<code>") that the
 * page shows as one line in place of the buttons. Nothing here throws into the page.
 */
import { api } from "../call-button/api.mjs";
import { guard, later, warn } from "../call-button/guard.mjs";
import { clientStateOf, decodeClientState } from "./client-state.mjs";
import { ANSWER, ELSEWHERE, Intents, WAIT } from "./intents.mjs";
import { checkMicrophone, loadSdk, missingSupport } from "./loader.mjs";
import { CallSession, LIVE } from "./session.mjs";
import { PhoneState } from "./state.mjs";
import { TokenKeeper } from "./token.mjs";

const CHANNEL = "telephony-softphone";
const READY_TIMEOUT_MS = 15_000;
const LOGIN_ERRORS = new Set([46001, 46002, 46003]);
const TOKEN_EXPIRING_SOON = 34001;

export class Softphone {
  constructor({ sdkUrl, rtcHost, credentialUrl, cookieName, hooks }) {
    this.sdkUrl = sdkUrl;
    this.rtcHost = rtcHost || "";
    this.credentialUrl = credentialUrl;
    this.cookieName = cookieName;
    this.hooks = hooks || {};
    this.tab = Math.random().toString(36).slice(2);
    this.client = null;
    this.sessions = new Map(); // SDK call id -> CallSession
    this.waiting = new Set(); // sessions whose invite waits for a POST to settle
    this.current = null; // the session the state machine follows
    this.waiters = new Set(); // whenReady() resolvers
    this.timers = { ready: 0, recheck: 0 };
    this.intents = new Intents();
    this.state = new PhoneState({ onChange: guard((s, prev, error) => this.changed(s, prev, error)) });
    this.keeper = new TokenKeeper({
      fetchCredential: () => this.fetchCredential(),
      login: (token) => this.client.login({ creds: { login_token: token } }),
      setTimer: (fn, ms) => later(fn, ms),
      log: (message, err) => warn("softphone " + message, err),
    });
    this.audio = document.createElement("audio");
    this.audio.autoplay = true;
    this.audio.className = "tel-phone__audio";
    this.audio.setAttribute("aria-hidden", "true");
    document.body.appendChild(this.audio);
    this.channel = null;
    if (window.BroadcastChannel) {
      this.channel = new window.BroadcastChannel(CHANNEL);
      this.channel.onmessage = guard((event) => {
        this.intents.remote(event.data);
        this.recheck();
      });
    }
  }

  fail(code, detail) {
    warn("softphone." + code, detail || "");
    this.state.send("fail", { code });
  }

  changed(state, prev, error) {
    if (state === "ready" || state === "error") {
      for (const resolve of [...this.waiters]) resolve(state === "ready");
      this.waiters.clear();
    }
    if (this.hooks.onState) this.hooks.onState(state, error);
  }

  whenReady(timeoutMs = READY_TIMEOUT_MS) {
    if (this.state.ready) return Promise.resolve(true);
    if (this.state.state === "error") return Promise.resolve(false);
    return new Promise((resolve) => {
      this.waiters.add(resolve);
      later(() => {
        if (this.waiters.delete(resolve)) resolve(false);
      }, timeoutMs);
    });
  }

  // -- start and login ---------------------------------------------------------------------

  start() {
    const s = this.state.state;
    const retryable = s === "error" && (this.error() === "login_failed" || this.error() === "service_down");
    if (s !== "idle" && !retryable) return;
    const missing = missingSupport(window);
    if (missing) return this.fail(missing);
    this.state.send("start");
    loadSdk(this.sdkUrl).then(
      guard((TelnyxRTC) => {
        this.state.send("loaded");
        this.fetchCredential().then(
          guard((credential) => this.connect(TelnyxRTC, credential)),
          (err) => this.fail((err && err.code) || "login_failed", err)
        );
      }),
      (err) => this.fail("sdk_load_failed", err)
    );
  }

  error() {
    return this.state.error ? this.state.error.code : "";
  }

  fetchCredential() {
    return api("POST", this.credentialUrl, {}, this.cookieName).then((res) => {
      const credential = res.body && res.body.credential;
      if (res.status === 201 && credential && credential.token) return credential;
      const err = new Error("credential request answered " + res.status);
      err.code = res.status === 503 ? "service_down" : "login_failed";
      throw err;
    });
  }

  connect(TelnyxRTC, credential) {
    if (this.client) {
      try {
        this.client.disconnect();
      } catch (e) {
        /* an old client that is already gone */
      }
    }
    const options = {
      login_token: credential.token,
      autoReconnect: true,
      hangupOnBeforeUnload: true,
      keepConnectionAliveOnSocketClose: true,
    };
    if (this.rtcHost) options.host = this.rtcHost;
    // A local (ws://) signalling server: no STUN/TURN lookups leave the machine.
    if (this.rtcHost.startsWith("ws://")) options.iceServers = [];
    const client = new TelnyxRTC(options);
    this.client = client;
    client.remoteElement = this.audio;
    const mine = (fn) => guard((...args) => this.client === client && fn(...args));
    client.on("telnyx.ready", mine(() => this.onReady(credential)));
    client.on("telnyx.error", mine((e) => this.onSdkError(e)));
    client.on("telnyx.warning", mine((e) => this.onSdkWarning(e)));
    client.on("telnyx.socket.close", mine(() => this.state.send("disconnected")));
    client.on("telnyx.notification", mine((n) => n && n.type === "callUpdate" && this.onCallUpdate(n.call)));
    window.clearTimeout(this.timers.ready);
    this.timers.ready = later(() => {
      if (this.state.state === "logging-in" && !this.keeper.refreshes) this.loginFailed("not ready in time");
    }, READY_TIMEOUT_MS);
    client.connect();
  }

  onReady(credential) {
    window.clearTimeout(this.timers.ready);
    if (this.state.state !== "ready") this.state.send("ready");
    if (this.keeper.timer === null && !this.keeper.inFlight) this.keeper.start(credential);
  }

  loginFailed(detail) {
    this.keeper.stop();
    const client = this.client;
    this.client = null;
    try {
      if (client) client.disconnect(); // a rejected token would only be retried in a loop
    } catch (e) {
      /* nothing left to stop */
    }
    this.fail("login_failed", detail);
  }

  onSdkError(event) {
    const error = (event && event.error) || {};
    if (LOGIN_ERRORS.has(error.code)) this.loginFailed(error.name || error.code);
    else warn("softphone.sdk_error " + (error.code || ""), error.message || "");
  }

  onSdkWarning(event) {
    const warning = (event && event.warning) || {};
    if (warning.code === TOKEN_EXPIRING_SOON) this.keeper.onExpiringSoon();
  }

  // -- a Call click ------------------------------------------------------------------------

  // Before the POST: resolves {ok: true, token} or {ok: false, code}. No call without it.
  prepare() {
    if (this.state.inCall) return Promise.resolve({ ok: false, code: "busy" });
    if (this.state.state === "idle") this.start();
    if (this.state.state === "error") return Promise.resolve({ ok: false, code: this.error() });
    return this.whenReady().then((ok) => {
      if (!ok) return { ok: false, code: this.error() || "login_failed" };
      return checkMicrophone(window).then((code) => (code ? { ok: false, code } : { ok: true, token: this.begin() }));
    });
  }

  begin() {
    this.post({ type: "placing" });
    return this.intents.begin();
  }

  // The POST answered: the call id it created, or null.
  settle(token, callId) {
    this.intents.settle(token, callId);
    this.post(callId ? { type: "claim", call: String(callId) } : { type: "settled" });
    this.recheck();
  }

  post(msg) {
    try {
      if (this.channel) this.channel.postMessage({ ...msg, tab: this.tab });
    } catch (e) {
      warn("softphone.broadcast failed", e);
    }
  }

  // -- invites and calls -------------------------------------------------------------------

  onCallUpdate(call) {
    if (!call || !call.id) return;
    let session = this.sessions.get(call.id);
    if (session && session.call !== call) {
      // After a network loss the SDK reattaches the call: a new call object with the
      // same id (recoveredCallId) replaces the old one, which stays "recovering". The
      // controls, the timer and the intent follow the new one.
      if (!call.recoveredCallId) return; // a stale update of a replaced object
      session.adopt(call);
    }
    if (!session) {
      if (call.direction !== "inbound" || call.state !== "ringing") return;
      session = new CallSession(call, { audio: this.audio });
      this.sessions.set(call.id, session);
      this.decide(session);
    }
    this.follow(session);
    session.update();
    if (session.over) {
      this.sessions.delete(call.id);
      this.waiting.delete(session);
      if (session.callId) this.intents.consume(session.callId);
    }
  }

  // The machine follows one call: the first one answered or ringing here.
  follow(session) {
    if (!this.current && !session.ignored && (session.auto || session.ringing)) this.current = session;
    if (session !== this.current) return;
    const s = session.state;
    const events = { ringing: "invite", answering: "answer", active: "active", held: "hold" };
    if (session.over) {
      this.current = null;
      if (this.state.send("end")) this.state.send("reset");
    } else if (s === "active" && this.state.state === "held") {
      this.state.send("unhold");
    } else if (events[s]) {
      this.state.send(events[s]);
    }
  }

  decide(session) {
    if (session.over) return;
    const raw = clientStateOf(session.call);
    const verdict = this.intents.classify(raw);
    if (verdict === WAIT) {
      this.waiting.add(session);
      this.scheduleRecheck();
      return;
    }
    this.waiting.delete(session);
    if (verdict === ANSWER) {
      session.callId = decodeClientState(raw).call;
      session.auto = true;
      this.intents.consume(session.callId);
      session.answer();
      if (this.hooks.onAgentCall) this.hooks.onAgentCall(session.callId, session);
    } else if (verdict === ELSEWHERE) {
      session.ignored = true;
      warn("softphone.invite for a call placed in another tab, left to it", session.id);
    } else {
      session.ringing = true; // rings: the person answers or declines
      if (this.hooks.onIncoming) this.hooks.onIncoming(session);
    }
  }

  recheck() {
    for (const session of [...this.waiting]) if (LIVE.has(session.state)) this.decide(session);
  }

  scheduleRecheck() {
    window.clearTimeout(this.timers.recheck);
    const at = this.intents.nextDeadline();
    if (at !== null) this.timers.recheck = later(() => this.recheck(), Math.max(10, at - Date.now() + 10));
  }

  // What window.TelephonyCallButtons.state().softphone reports.
  snapshot() {
    return { state: this.state.state, error: this.error(), calls: this.sessions.size };
  }
}
