// Getting the agent's attention: a short beep and a flashing tab title. Also owns
// window.__parley, the probe browser tests read to observe both and the socket.

const BASE_TITLE = 'Parley';

export const probe = (window.__parley = {
  connected: false,
  seq: null,
  titleFlashing: false,
  tonesPlayed: 0,
});

let audio = null;

// Browsers only let an AudioContext run after the user has interacted with the
// page, so it is created (or resumed) from gestures, never from a socket frame.
function unlockAudio() {
  try {
    audio ??= new AudioContext();
    if (audio.state === 'suspended') audio.resume();
  } catch {
    // No WebAudio here: stay silent.
  }
}

for (const type of ['pointerdown', 'keydown', 'touchend']) {
  addEventListener(type, unlockAudio, { capture: true, passive: true });
}

// A two-note "ding", about a quarter of a second long.
export function playTone() {
  // A past gesture (sticky activation) also allows starting the context now.
  if (!audio && navigator.userActivation?.hasBeenActive) unlockAudio();
  if (audio?.state !== 'running') return;
  const t = audio.currentTime;
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.type = 'sine';
  osc.frequency.setValueAtTime(880, t);
  osc.frequency.setValueAtTime(1175, t + 0.09);
  gain.gain.setValueAtTime(0.0001, t);
  gain.gain.exponentialRampToValueAtTime(0.18, t + 0.015);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.26);
  osc.connect(gain).connect(audio.destination);
  osc.start(t);
  osc.stop(t + 0.27);
  probe.tonesPlayed += 1;
}

const pending = new Map(); // conversation id -> new messages not yet looked at
let flashTimer = null;
let showingAlert = false;

export function flashTitle(conversationId) {
  pending.set(conversationId, (pending.get(conversationId) ?? 0) + 1);
  syncFlash();
}

// Stop flashing for one conversation (it was viewed), or for all of them.
export function stopFlash(conversationId) {
  if (conversationId === undefined) pending.clear();
  else pending.delete(conversationId);
  syncFlash();
}

function syncFlash() {
  const active = pending.size > 0;
  probe.titleFlashing = active;
  if (active && !flashTimer) {
    showingAlert = false;
    flashTimer = setInterval(tick, 1000);
    tick();
  } else if (!active && flashTimer) {
    clearInterval(flashTimer);
    flashTimer = null;
    document.title = BASE_TITLE;
  }
}

function tick() {
  showingAlert = !showingAlert;
  let count = 0;
  for (const n of pending.values()) count += n;
  document.title = showingAlert ? `(${count}) New message` : BASE_TITLE;
}
