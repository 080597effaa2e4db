/*
 * Number and time formats of the "Telephony health" page. The server renders the first
 * page with the same rules (dashboard/templatetags/health_format.py), so a value reads
 * the same before and after a live update; tests/fixtures/health_format_cases.json holds
 * the cases both sides are tested against. DOM-free, unit-tested under Node.
 */

export const DASH = "–"; // en dash: no value

function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

function pad2(n) {
  return (n < 10 ? "0" : "") + n;
}

// Python rounds exact halves to even (round(), format(".0f")); Math.round rounds them up.
export function roundHalfEven(v) {
  if (Math.abs(v % 1) !== 0.5) return Math.round(v);
  const down = Math.floor(v);
  return down % 2 === 0 ? down : down + 1;
}

// v.toFixed(1) as Python's f"{v:.1f}": an exact half (v * 4 odd) goes to even.
export function fixed1(v) {
  if (Number.isInteger(v * 4) && (v * 4) % 2 !== 0) return (roundHalfEven(v * 10) / 10).toFixed(1);
  return v.toFixed(1);
}

// Seconds as "12 s", "4 m 05 s", "3 h 12 m", "2 d 4 h".
export function duration(v) {
  if (!isNum(v)) return DASH;
  const t = Math.trunc(v); // int() in Python; then divmod, whose remainder is never negative
  const d = Math.floor(t / 86400);
  const rest = t - d * 86400;
  const h = Math.floor(rest / 3600);
  const m = Math.floor((rest % 3600) / 60);
  const s = rest % 60;
  if (d) return d + " d " + h + " h";
  if (h) return h + " h " + pad2(m) + " m";
  if (m) return m + " m " + pad2(s) + " s";
  return s + " s";
}

// Seconds since something, with one decimal: "0.4 s ago".
export function age(v) {
  return isNum(v) ? fixed1(v) + " s ago" : DASH;
}

// Milliseconds: "3.2 ms", "140 ms", "2.5 s".
export function ms(v) {
  if (!isNum(v)) return DASH;
  if (v >= 1000) return fixed1(v / 1000) + " s";
  return v < 10 ? fixed1(v) + " ms" : roundHalfEven(v) + " ms";
}

// A histogram bucket bound: "≤ 25 ms"; null means past the last bucket.
export function leMs(v) {
  return isNum(v) ? "≤ " + ms(v) : DASH;
}

// A rate in 0..1 as a whole percentage.
export function pct(v) {
  return isNum(v) ? roundHalfEven(v * 100) + "%" : DASH;
}

// Megabytes, whole.
export function mb(v) {
  return isNum(v) ? roundHalfEven(v) + " MB" : DASH;
}

// The value, or a dash when it is null or empty.
export function dash(v) {
  return v === null || v === undefined || v === "" ? DASH : String(v);
}

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|([+-])(\d{2}):(\d{2}))?)?$/;

// Epoch ms of an ISO 8601 time, or NaN. Strict like Python's fromisoformat (no 24:00, no
// 30 February), where Date.parse would roll such values over.
export function parseIso(text) {
  const m = ISO.exec(text);
  if (!m) return NaN;
  const [year, month, day, hour, minute, second, , sign, offH, offM] = m
    .slice(1)
    .map((v) => (v === undefined || v === "Z" || v === "+" || v === "-" ? v : Number(v)));
  const wallOk = (hour || 0) <= 23 && (minute || 0) <= 59 && (second || 0) <= 59;
  const offsetOk = !sign || (offH <= 23 && offM <= 59);
  const probe = new Date(0);
  probe.setUTCFullYear(year, month, 0); // day 0 of the next month: the last of this one
  if (month < 1 || month > 12 || day < 1 || day > probe.getUTCDate() || !wallOk || !offsetOk) {
    return NaN;
  }
  const offset = sign ? (sign === "-" ? -1 : 1) * (offH * 60 + offM) : 0;
  const wall = new Date(0);
  wall.setUTCFullYear(year, month - 1, day); // Date.UTC maps years 0-99 to 1900-1999
  wall.setUTCHours(hour || 0, minute || 0, second || 0, 0);
  return wall.getTime() - offset * 60000;
}

/*
 * An ISO 8601 time as "14:03:27 UTC": every operator reads the same clock, whatever the
 * browser's time zone, and it matches the server's logs. Without an offset the time is
 * taken as UTC (as the server does); anything that is not ISO 8601 is shown as it is,
 * and nothing at all as a dash.
 */
export function utcClock(iso) {
  if (iso === null || iso === undefined || iso === "") return DASH;
  const text = String(iso);
  const at = parseIso(text);
  if (Number.isNaN(at)) return text;
  const d = new Date(at);
  return pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes()) + ":" + pad2(d.getUTCSeconds()) + " UTC";
}
