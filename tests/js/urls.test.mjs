// Addresses and the CSRF cookie (static/telephony/call-button/urls.mjs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { callAddress, hangupAddress, readCookie, wsAddress } from "../../static/telephony/call-button/urls.mjs";

test("callAddress and hangupAddress: the id is escaped", () => {
  assert.equal(callAddress("/api/webrtc/call", 42), "/api/webrtc/call/42");
  assert.equal(hangupAddress("/api/webrtc/call", "a/b"), "/api/webrtc/call/a%2Fb/hangup");
});

test("wsAddress: the page's host and scheme; absolute URLs kept", () => {
  assert.equal(wsAddress("/ws/webrtc/", { protocol: "http:", host: "localhost:8000" }), "ws://localhost:8000/ws/webrtc/");
  assert.equal(wsAddress("/ws/webrtc/", { protocol: "https:", host: "crm.example" }), "wss://crm.example/ws/webrtc/");
  assert.equal(wsAddress("wss://rt.example/ws/", { protocol: "http:", host: "x" }), "wss://rt.example/ws/");
});

test("readCookie: exact name, decoded, empty when absent", () => {
  const jar = "sessionid=abc; xcsrftoken=wrong; csrftoken=t%2Bk; other=1";
  assert.equal(readCookie(jar, "csrftoken"), "t+k");
  assert.equal(readCookie(jar, "missing"), "");
  assert.equal(readCookie("", "csrftoken"), "");
  assert.equal(readCookie("csrftoken=%E0%A4%A", "csrftoken"), "%E0%A4%A");
});
