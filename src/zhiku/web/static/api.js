// Talking to the zhiku API: the key from Settings, errors as readable messages, SSE over fetch (so the
// Authorization header can be sent, which EventSource cannot do).

export const settings = {
  get key() { return localStorage.getItem("zhiku.key") || ""; },
  set key(value) { value ? localStorage.setItem("zhiku.key", value) : localStorage.removeItem("zhiku.key"); },
};

export class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

function headers(extra = {}) {
  const h = { ...extra };
  if (settings.key) h.Authorization = `Bearer ${settings.key}`;
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
  const init = { method, headers: headers(), signal };
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

// An uploaded file's bytes and the type the server sniffed. Never render these as a page of this origin (it holds
// the key): see openOriginal in app.js.
export async function fetchFile(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  const type = (response.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
  return { type, bytes: await response.arrayBuffer() };
}

// Read a text/event-stream response; calls onEvent({event, data}) per event until the stream ends or aborts.
export async function readEvents(path, onEvent, { method = "GET", json, signal } = {}) {
  const init = { method, headers: headers({ Accept: "text/event-stream" }), signal };
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
