// Talking to the zhiku API: a person's login session rides in an HttpOnly cookie that this code never sees (so no
// script on the page can steal it); writes carry the session's CSRF token. Errors become readable messages; SSE is
// read over fetch.

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
localStorage.removeItem("zhiku.key"); // where earlier versions of this UI kept an API key: nothing stays to steal
let csrfToken = ""; // from /api/v1/auth/session or the login answer; kept in memory only, never in storage

// Who is logged in: `account` (null when nobody is) and `auth` ("off": a development server, no login at all).
export const session = { account: null, auth: "on" };

function remember(answer) {
  csrfToken = (answer && answer.csrf_token) || "";
  session.account = (answer && answer.account) || null;
  session.auth = (answer && answer.auth) || "on";
}

// Ask the server who is logged in (after a page load the cookie is there, the CSRF token is not yet).
export async function loadSession() {
  try {
    remember(await api("/api/v1/auth/session"));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) throw err;
    remember(null);
  }
  return session;
}

export async function logIn(login, password) {
  remember(await api("/api/v1/auth/login", { method: "POST", json: { login, password } }));
  return session;
}

export async function logOut() {
  try { await api("/api/v1/auth/logout", { method: "POST" }); } finally { remember(null); }
}

export class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

function headers(method, extra = {}) {
  const h = { ...extra };
  if (!SAFE.has(method) && csrfToken) h["X-CSRF-Token"] = csrfToken;
  return h;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = "http_error";
  try {
    const body = await response.json();
    if (body && body.error) { message = body.error.message; code = body.error.code; }
  } catch { /* not JSON */ }
  return new ApiError(response.status, message, code);
}

export async function api(path, { method = "GET", json, form, signal } = {}) {
  const init = { method, headers: headers(method), signal, credentials: "same-origin" };
  if (json !== undefined) { init.body = JSON.stringify(json); init.headers["Content-Type"] = "application/json"; }
  if (form !== undefined) init.body = form;
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "network");
  }
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

// An uploaded file's bytes and the type the server sniffed. Never render these as a page of this origin (its
// scripts would act with the session): see openOriginal in app.js.
export async function fetchFile(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw await failure(response);
  const type = (response.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
  return { type, bytes: await response.arrayBuffer() };
}

// Read a text/event-stream response; calls onEvent({event, data}) per event until the stream ends or aborts.
export async function readEvents(path, onEvent, { method = "GET", json, signal } = {}) {
  const init = { method, headers: headers(method, { Accept: "text/event-stream" }), signal, credentials: "same-origin" };
  if (json !== undefined) { init.body = JSON.stringify(json); init.headers["Content-Type"] = "application/json"; }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "network");
  }
  if (!response.ok) throw await failure(response);
  if ((response.headers.get("Content-Type") || "").startsWith("application/json")) { // an answer in one piece
    onEvent({ event: "message", data: await response.text() });
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent({ event, data: data.join("\n") });
    }
  }
}
