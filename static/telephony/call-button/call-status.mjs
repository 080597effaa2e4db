/*
 * What a call's status means for the person who placed it: the order statuses move in,
 * the words in the status region and the hang-up causes. DOM-free, unit-tested under Node.
 */

// A status never goes backwards: a late "ringing" after "answered" is ignored.
export const RANK = Object.freeze({
  queued: 0,
  unknown: 0,
  dialing: 1,
  ringing: 2,
  answered: 3,
  completed: 4,
  failed: 4,
});

export const FINAL_RANK = 4;

const CAUSES = Object.freeze({
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
});

// The rank of a status, or undefined for a status this script does not know.
export function rankOf(status) {
  return Object.prototype.hasOwnProperty.call(RANK, status) ? RANK[status] : undefined;
}

// Whether an update moves the call on: known, not backwards, not the same status again.
export function movesForward(current, next) {
  const rank = rankOf(next);
  if (rank === undefined) return false;
  if (!current) return true;
  return rank >= current.rank && next !== current.status;
}

// Why a call ended, for people; "" for a normal hang-up. Unknown codes read as words.
export function causeOf(call) {
  const key = String((call && (call.error_code || call.hangup_cause)) || "");
  if (Object.prototype.hasOwnProperty.call(CAUSES, key)) return CAUSES[key];
  return key.replace(/_/g, " ");
}

// Seconds as m:ss (the in-call timer and "Call ended after 1:05").
export function clock(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const s = total % 60;
  return Math.floor(total / 60) + ":" + (s < 10 ? "0" : "") + s;
}

/*
 * What the status region shows for a call update: {text, state, timer, final}.
 * state is the widget's data-tel-call-state; timer says the m:ss timer runs (answered);
 * final says the call is over. hangingUp: our own Hang up is in flight, so a failure
 * reads as "Call cancelled".
 */
export function describeCall(call, { hangingUp = false } = {}) {
  switch (call.status) {
    case "ringing":
      return { text: "Ringing…", state: "ringing", timer: false, final: false };
    case "answered":
      return { text: "In call", state: "in-call", timer: true, final: false };
    case "completed": {
      const talk = call.duration_seconds;
      const cause = causeOf(call);
      const text =
        "Call ended" +
        (talk ? " after " + clock(talk) : "") +
        (cause && cause !== "cancelled" ? ": " + cause : "");
      return { text, state: "ended", timer: false, final: true };
    }
    case "failed":
      if (hangingUp) return { text: "Call cancelled", state: "ended", timer: false, final: true };
      return {
        text: "Call failed: " + (causeOf(call) || "unknown reason"),
        state: "failed",
        timer: false,
        final: true,
      };
    default: // queued, dialing, unknown (no answer from a worker yet: still being settled)
      return { text: "Calling…", state: "calling", timer: false, final: false };
  }
}

// When the call was answered, in epoch ms: the server's answered_at, never in the future.
export function answeredAtMs(answeredAt, now) {
  const parsed = answeredAt ? Date.parse(answeredAt) : NaN;
  return Number.isNaN(parsed) ? now : Math.min(parsed, now);
}
