/*
 * The call timer's text: m:ss under an hour, h:mm:ss after, for the visible timer; and
 * a spoken form for the accessible label (announced on demand, not every second).
 * DOM-free.
 */

function whole(seconds) {
  const n = Math.floor(Number(seconds));
  return Number.isFinite(n) && n > 0 ? n : 0;
}

export function formatDuration(seconds) {
  const s = whole(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

export function spokenDuration(seconds) {
  const s = whole(seconds);
  const parts = [];
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) parts.push(h === 1 ? "1 hour" : `${h} hours`);
  if (m) parts.push(m === 1 ? "1 minute" : `${m} minutes`);
  if (sec || !parts.length) parts.push(sec === 1 ? "1 second" : `${sec} seconds`);
  return parts.join(" ");
}

// Seconds since `startMs` at `nowMs`, never negative (clocks can step back).
export function elapsedSeconds(startMs, nowMs) {
  return Math.max(0, (nowMs - startMs) / 1000);
}
