/*
 * Nothing in the call buttons may break the host page: every event handler, timer and
 * promise callback goes through guard(), which logs an error instead of throwing it.
 * DOM-free (only console and timers), so it is unit-tested under Node.
 */

export function warn(message, err) {
  try {
    if (globalThis.console && globalThis.console.warn) {
      globalThis.console.warn("[telephony] " + message, err || "");
    }
  } catch (e) {
    /* nothing left to do */
  }
}

// Wrap a callback so that an error in it is logged, never thrown into the host page.
export function guard(fn) {
  return function guarded(...args) {
    try {
      return fn.apply(this, args);
    } catch (e) {
      warn("unexpected error", e);
      return undefined;
    }
  };
}

export function later(fn, ms) {
  return globalThis.setTimeout(guard(fn), ms);
}
