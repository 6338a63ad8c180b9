// Loaded on every page: local dates, live countdowns on the server's clock, copy buttons,
// confirmable action buttons, and the member's real-time socket with its fallback.
import { api } from "./api.js";
import { flash, idle, localizeTimes, notice, showFlash, t, tracked } from "./ui.js";

// Server time minus browser time: countdowns never trust the visitor's clock.
let clockOffset = 0;

function syncClock(serverIso) {
  const server = Date.parse(serverIso);
  if (!Number.isNaN(server)) clockOffset = server - Date.now();
}

export function serverNow() {
  return Date.now() + clockOffset;
}

function pad(value) {
  return String(value).padStart(2, "0");
}

function renderCountdowns() {
  const units = t("units").split(",");
  const now = serverNow();
  for (const node of document.querySelectorAll(".countdown[data-expires]")) {
    const left = Math.floor((Date.parse(node.dataset.expires) - now) / 1000);
    const card = node.closest(".sub-card");
    if (Number.isNaN(left)) continue;
    if (left <= 0) {
      node.textContent = t("expired");
      card?.classList.add("is-expired");
      continue;
    }
    card?.classList.remove("is-expired");
    const days = Math.floor(left / 86400);
    const hours = Math.floor((left % 86400) / 3600);
    const minutes = Math.floor((left % 3600) / 60);
    const seconds = left % 60;
    node.textContent = `${days}${units[0]} ${pad(hours)}${units[1]} ${pad(minutes)}${units[2]} `
      + `${pad(seconds)}${units[3]}`;
  }
}

// Re-reads the page and swaps the parts marked data-refresh, keeping what is being typed.
async function softRefresh() {
  let response;
  try {
    response = await fetch(location.href, { credentials: "same-origin",
      headers: { Accept: "text/html" } });
  } catch (error) {
    return;
  }
  if (response.redirected && new URL(response.url).pathname === "/login") {
    location.assign("/login");
    return;
  }
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const part of document.querySelectorAll("[data-refresh][id]")) {
    const replacement = fresh.getElementById(part.id);
    if (replacement) part.replaceWith(document.importNode(replacement, true));
  }
  syncClock(fresh.body.dataset.serverNow);
  localizeTimes();
  renderCountdowns();
}

async function copyFrom(button) {
  const source = document.querySelector(button.dataset.copy);
  const text = source ? source.textContent.trim() : "";
  try {
    await navigator.clipboard.writeText(text);
    notice(t("copied"), "success");
  } catch (error) {
    const range = document.createRange();
    if (source) {
      range.selectNodeContents(source);
      const selection = getSelection();
      selection?.removeAllRanges();
      selection?.addRange(range);
    }
    notice(t("copy-failed"), "error");
  }
}

async function runAction(button) {
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  const [method, url] = button.dataset.api.split(" ");
  button.disabled = true;
  try {
    await tracked(api(method, url));
    if (button.dataset.done) flash(button.dataset.done);
    location.reload();
  } catch (error) {
    notice(error.message, "error");
    button.disabled = false;
  }
}

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  const copy = target?.closest("button[data-copy]");
  if (copy) {
    copyFrom(copy);
    return;
  }
  const action = target?.closest("button[data-api]");
  if (action && !action.closest("form") && !action.hasAttribute("data-custom")) {
    runAction(action);
  }
});

// Real time ---------------------------------------------------------------------------------
const POLL_MS = 30_000;
let socket = null;
let attempts = 0;
let pollTimer = null;

function setLiveState(state) {
  const node = document.getElementById("live-state");
  if (!node) return;
  node.dataset.state = state;
  node.textContent = t(state === "on" ? "live" : state === "off" ? "offline" : "connecting");
}

async function checkSession() {
  await idle();
  try {
    await api("GET", "/api/auth/me");
  } catch (error) {
    if (error.status === 401) location.assign("/login");
  }
}

// Without a socket: refresh from the API, so the countdowns and the session stay right.
async function poll() {
  try {
    const data = await api("GET", "/api/subscriptions");
    syncClock(data.now);
    for (const item of data.items) {
      for (const node of document.querySelectorAll(
        `.sub-card[data-product="${CSS.escape(item.product)}"] .countdown`)) {
        node.dataset.expires = item.expires_at;
      }
    }
    renderCountdowns();
  } catch (error) {
    if (error.status === 401) location.assign("/login");
  }
}

function startPolling() {
  if (pollTimer === null) pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() {
  if (pollTimer !== null) clearInterval(pollTimer);
  pollTimer = null;
}

function onEvent(message) {
  const { event } = message;
  if (event === "banned") {
    location.assign("/login?banned=1");
    return;
  }
  if (event === "sessions_ended") {
    checkSession();
    return;
  }
  if (event === "pong") return;
  const text = t(`ev-${event}`);
  if (text !== `ev-${event}`) notice(text, "info");
  softRefresh();
}

function connect() {
  setLiveState("connecting");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  try {
    socket = new WebSocket(`${scheme}//${location.host}/ws/member/`);
  } catch (error) {
    startPolling();
    return;
  }
  socket.addEventListener("open", () => {
    attempts = 0;
    setLiveState("on");
    stopPolling();
  });
  socket.addEventListener("message", (event) => {
    try {
      onEvent(JSON.parse(event.data));
    } catch (error) {
      // A malformed frame is ignored; the next refresh corrects the page.
    }
  });
  socket.addEventListener("close", (event) => {
    socket = null;
    setLiveState("off");
    if (event.code === 4403) {
      location.assign("/login?banned=1");
      return;
    }
    if (event.code === 4401) {
      checkSession();
    }
    startPolling();
    // Back-off with jitter: 1 s, 2 s, 4 s ... at most 60 s between attempts.
    const delay = Math.min(60_000, 1000 * 2 ** attempts) * (0.5 + Math.random() / 2);
    attempts += 1;
    setTimeout(connect, delay);
  });
}

function start() {
  syncClock(document.body.dataset.serverNow);
  localizeTimes();
  renderCountdowns();
  setInterval(renderCountdowns, 1000);
  showFlash();
  if (document.body.dataset.member && "WebSocket" in window) connect();
  else if (document.body.dataset.member) startPolling();
}

start();
