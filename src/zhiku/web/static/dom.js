// The UI's building blocks shared by its pages: DOM construction (never HTML strings), formats, the page frame
// and the error alert.
import { ApiError } from "/static/api.js";
import { language, t } from "/static/i18n.js";

const main = document.getElementById("main");
// move focus to the new page's content after in-app navigation, not on first load (app.js sets it)
export const navigation = { navigated: false };

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child);
  return el;
}

export function marked(text, spans) { // text with <mark> around spans, built as DOM nodes (never as HTML)
  const out = [];
  let last = 0;
  for (const [start, end] of spans) {
    if (start < last) continue;
    out.push(text.slice(last, start), h("mark", {}, text.slice(start, end)));
    last = end;
  }
  out.push(text.slice(last));
  return out;
}

// Words with `code` in backticks as text and <code> nodes (never HTML).
export function rich(text) {
  return text.split("`").map((part, i) => (i % 2 ? h("code", {}, part) : part));
}

// Where a document came from, without its name: the folders of an uploaded path ("upload:docs/a/x.pdf" -> "docs/a/"),
// of a synced source's file, or of the path `zhiku add` read; "" for none.
export function folderOf(source) {
  if (!source) return "";
  let path = source.startsWith("upload:") ? source.slice(7) : source;
  if (path.startsWith("source:")) path = path.slice(path.indexOf(":", 7) + 1); // "source:<id>:docs/a.md" -> "docs/a.md"
  const cut = path.lastIndexOf("/");
  return cut >= 0 ? path.slice(0, cut + 1) : "";
}

export function formatSize(bytes) {
  if (bytes === undefined || bytes === null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(value)} ${units[unit]}`;
}

export function formatDate(iso) {
  if (!iso) return "";
  const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`); // the server's times are UTC
  if (Number.isNaN(date.getTime())) return "";
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(date);
}

export function locale() { return language() === "zh" ? "zh-CN" : "en"; }

export function message(err) {
  if (err instanceof ApiError) {
    if (err.status === 0) return t("error.network");
    if (err.status === 401) return t("error.auth");
    return err.message;
  }
  return err && err.message ? err.message : String(err);
}

export function showError(err) {
  if (err && err.name === "AbortError") return;
  document.getElementById("alert-text").textContent = message(err);
  document.getElementById("alert").hidden = false;
}

export function clearError() { document.getElementById("alert").hidden = true; }

export function page(title, ...children) {
  main.replaceChildren(h("h1", {}, title), ...children);
  if (navigation.navigated) main.focus({ preventScroll: true });
  document.title = `${title} · zhiku 智库`;
}

export function statusBadge(status) { return h("span", { class: `status ${status}` }, t(`status.${status}`)); }
