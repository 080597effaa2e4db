/*
 * The DTMF keypad: which keys exist and what may be sent. The SDK sends digits in
 * signalling (telnyx_rtc.info), and the server rejects anything else, so bad input is
 * stopped here with a reason. DOM-free.
 */

// Rows of the keypad, with the letters printed under the digits.
export const KEYPAD = [
  [["1", ""], ["2", "ABC"], ["3", "DEF"]],
  [["4", "GHI"], ["5", "JKL"], ["6", "MNO"]],
  [["7", "PQRS"], ["8", "TUV"], ["9", "WXYZ"]],
  [["*", ""], ["0", "+"], ["#", ""]],
];

const VALID = /^[0-9*#A-Da-d]$/;
export const MAX_DIGITS = 32;

// Whether one key may be sent.
export function isDtmfKey(key) {
  return typeof key === "string" && VALID.test(key);
}

// Digits to send for a typed string: {digits} or {error: code}. Spaces and dashes (as
// people paste "123-456") are dropped; anything else is refused, not silently skipped.
export function parseDtmf(text) {
  if (typeof text !== "string") return { error: "invalid_dtmf" };
  const cleaned = text.replace(/[\s-]/g, "");
  if (!cleaned) return { error: "empty_dtmf" };
  if (cleaned.length > MAX_DIGITS) return { error: "too_many_digits" };
  for (const ch of cleaned) if (!isDtmfKey(ch)) return { error: "invalid_dtmf" };
  return { digits: cleaned.toUpperCase() };
}

// The key a keyboard event stands for (digits, * and #, also on the numpad), or "".
export function keyFromKeyboard(key) {
  if (typeof key !== "string") return "";
  return /^[0-9*#]$/.test(key) ? key : "";
}
