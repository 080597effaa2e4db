/*
 * Recording, for the person on the call: whether the "Recording" indicator shows, whether
 * the Record / Stop recording toggle shows (TELEPHONY_RECORDING=on_demand, answered calls
 * only) and what it says, and why a start or stop failed. DOM-free, unit-tested under Node
 * (tests/js/recording.test.mjs); recorder.mjs puts it on the page.
 */
import { reasonFor } from "./reasons.mjs";

export const POLICIES = Object.freeze(["off", "all", "on_demand"]);

// The policy the server rendered (data-tel-recording); anything else reads as "off".
export function policyOf(raw) {
  return POLICIES.includes(raw) ? raw : "off";
}

/*
 * What to show for a call update: {indicator, toggle, pressed, label, disabled, note}.
 * indicator: the call is being recorded now (whatever the policy). toggle: the on-demand
 * button is offered (the customer is on the line). pending: our own start or stop is in
 * flight. available: the service is up (a toggle that cannot work says why).
 */
export function recordingView(policy, call, { pending = false, available = true } = {}) {
  const recording = Boolean(call && call.recording === true);
  const toggle = policyOf(policy) === "on_demand" && Boolean(call && call.status === "answered");
  let label = recording ? "Stop recording" : "Record";
  if (pending) label = recording ? "Stopping…" : "Starting…";
  const note = toggle && !available ? "Recording cannot be switched now: calls are unavailable" : "";
  return {
    indicator: recording,
    toggle,
    pressed: recording,
    label,
    disabled: pending || !available,
    note,
  };
}

const REASONS = Object.freeze({
  call_not_answered: "the call is not in progress",
  recording_disabled: "recording cannot be switched on or off here",
  not_found: "the call no longer exists",
});

// Why a start (wanted true) or stop failed, from the API's answer {status, body, retryAfter}.
export function recordingFailure(wanted, res) {
  const code = res && res.body && res.body.code;
  const why = Object.prototype.hasOwnProperty.call(REASONS, code) ? REASONS[code] : reasonFor(res);
  return (wanted ? "Could not start recording: " : "Could not stop recording: ") + why;
}
