/*
 * How long to wait before the next WebSocket reconnect. DOM-free; random is injected so
 * the jitter is tested exactly.
 */

export const UNAUTHENTICATED_CLOSE = 4401;

// 0 (never failed) -> minMs; then doubling up to maxMs; ±20 % jitter so that many tabs
// do not reconnect in step.
export function nextBackoff(previousMs, { backoffMinMs, backoffMaxMs }, random = Math.random) {
  const base = previousMs ? Math.min(previousMs * 2, backoffMaxMs) : backoffMinMs;
  return Math.round(base * (0.8 + random() * 0.4));
}

// 4401 means "not logged in (any more)": retry slowly, the user may log in in another tab.
export function reconnectDelay(previousMs, closeCode, config, random = Math.random) {
  if (closeCode === UNAUTHENTICATED_CLOSE) return config.backoffMaxMs;
  return nextBackoff(previousMs, config, random);
}
