// The topic map of a knowledge base (#/kb/<id>/topics): its documents as dots coloured by cluster on a 2-D map,
// the clusters named by their distinctive terms; a cluster (its label on the map, or its button in the list)
// shows its documents, with a link to search the knowledge base for its terms. Built as DOM nodes, never HTML.
import { api } from "/static/api.js";
import { h, message, page } from "/static/dom.js";
import { plural, t } from "/static/i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const LABELS = 14; // cluster names written on the map (the largest clusters); every cluster is in the list
const MIN_CLUSTERS = 2; // zhiku.knowledge.topics MIN_CLUSTERS and MAX_CLUSTERS
const MAX_CLUSTERS = 100;

function s(tag, attrs = {}, ...children) { // an SVG element
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child);
  return el;
}

export function colour(index) { // well-spread hues (golden angle), two lightness steps
  return `hsl(${Math.round((index * 137.508) % 360)} 65% ${index % 2 ? 42 : 52}%)`;
}

function swatch(index) { // a dot of the cluster's colour (an SVG fill: the CSP allows no inline styles)
  return s("svg", { class: "swatch", viewBox: "0 0 2 2", "aria-hidden": "true" },
    s("circle", { cx: 1, cy: 1, r: 1, fill: colour(index) }));
}

export async function renderTopics(kbId, params = new URLSearchParams()) {
  const kb = await api(`/api/v1/knowledge-bases/${kbId}`);
  const asked = params.get("clusters");
  const query = asked ? `?clusters=${encodeURIComponent(asked)}` : "";
  const title = t("topics.title", { name: kb.name });
  const back = h("p", {}, h("a", { href: `#/kb/${kb.id}` }, t("topics.back")));
  page(title, back, h("p", { class: "muted", role: "status" }, t("topics.loading")));
  const form = h("form", { class: "row topics-form", onsubmit: (event) => {
    event.preventDefault();
    const value = new FormData(event.target).get("clusters");
    location.hash = `#/kb/${kb.id}/topics${value ? `?clusters=${encodeURIComponent(value)}` : ""}`;
  } },
  h("label", {}, t("topics.clusters"),
    h("input", { name: "clusters", type: "number", min: MIN_CLUSTERS, max: MAX_CLUSTERS, step: 1,
      value: asked || "", placeholder: t("topics.auto") })),
  h("button", { type: "submit" }, t("topics.apply")));
  let map;
  try {
    map = await api(`/api/v1/knowledge-bases/${kb.id}/topics${query}`);
  } catch (err) { // e.g. more clusters than documents: say why beside the form, to correct it
    if (err.status !== 400) throw err;
    page(title, back, form, h("p", { class: "error-text", role: "alert" }, message(err)));
    return;
  }
  const summary = h("p", { class: "muted" }, t(map.automatic ? "topics.summary.auto" : "topics.summary.asked",
    { clusters: map.clusters.length, documents: map.documents.length }));

  if (!map.documents.length) {
    page(title, back, h("p", { class: "muted" }, t("topics.empty")));
    return;
  }
  const byId = new Map(map.documents.map((d) => [d.id, d]));
  const panel = h("section", { class: "topic-panel card stack", "aria-live": "polite", id: "topic-panel" },
    h("p", { class: "muted" }, t("topics.pick")));
  const buttons = new Map();
  const groups = new Map();
  let selected = null;

  function select(cluster) {
    selected = selected === cluster.id ? null : cluster.id;
    for (const [id, button] of buttons) button.setAttribute("aria-pressed", String(id === selected));
    for (const [id, group] of groups) group.setAttribute("class", selected === null ? "cluster"
      : id === selected ? "cluster chosen" : "cluster dimmed");
    if (selected === null) {
      panel.replaceChildren(h("p", { class: "muted" }, t("topics.pick")));
      return;
    }
    const docs = cluster.document_ids.map((id) => byId.get(id)).filter(Boolean);
    const search = `#/search?kb=${kb.id}&q=${encodeURIComponent(cluster.terms.join(" "))}`;
    panel.replaceChildren(
      h("h2", {}, swatch(cluster.id),
        cluster.name),
      h("p", { class: "muted" }, plural("topics.documents", cluster.size)),
      h("ul", { class: "topic-docs" }, docs.map((d) => h("li", { "data-document": d.id },
        h("span", { class: "filename" }, d.filename),
        d.title && d.title !== d.filename ? h("span", { class: "muted" }, ` — ${d.title}`) : null))),
      h("p", {}, h("a", { href: search }, t("topics.search"))));
  }

  // the map: -1..1 on both axes, y upwards
  const svg = s("svg", { viewBox: "-1.12 -1.12 2.24 2.24", class: "topic-map", role: "group",
    "aria-label": t("topics.map") });
  for (const cluster of map.clusters) {
    const dots = map.documents.filter((d) => d.cluster === cluster.id).map((d) =>
      s("circle", { cx: d.x.toFixed(4), cy: (-d.y).toFixed(4), r: 0.026, fill: colour(cluster.id) },
        s("title", {}, d.title || d.filename)));
    const group = s("g", { class: "cluster", "data-cluster": cluster.id, role: "button", tabindex: 0,
      "aria-label": `${cluster.name} (${plural("topics.documents", cluster.size)})`,
      onclick: () => select(cluster),
      onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(cluster); } } },
    dots);
    groups.set(cluster.id, group);
    svg.append(group);
  }
  const placed = []; // the labels' boxes so far: a label that would overlap one is left out (the list has it)
  for (const cluster of map.clusters.slice(0, LABELS)) { // labels last: above every dot
    const label = cluster.terms.slice(0, 2).join(" · ") || cluster.name;
    const width = [...label].reduce((sum, ch) => sum + (/[\u3000-\u9fff]/.test(ch) ? 0.056 : 0.032), 0);
    const box = { x: cluster.x - width / 2, y: -cluster.y - 0.05, w: width, h: 0.065 };
    if (placed.some((o) => box.x < o.x + o.w && o.x < box.x + box.w && box.y < o.y + o.h && o.y < box.y + box.h)) continue;
    placed.push(box);
    svg.append(s("text", { x: cluster.x.toFixed(4), y: (-cluster.y).toFixed(4), class: "topic-label",
      "text-anchor": "middle", "aria-hidden": "true", onclick: () => select(cluster) }, label));
  }

  const list = h("ul", { class: "topic-list" }, map.clusters.map((cluster) => {
    const button = h("button", { type: "button", "aria-pressed": "false", "aria-controls": "topic-panel",
      "data-cluster": cluster.id, onclick: () => select(cluster) },
    swatch(cluster.id),
    h("span", { class: "topic-name" }, cluster.name), h("span", { class: "muted count" }, String(cluster.size)));
    buttons.set(cluster.id, button);
    return h("li", {}, button);
  }));

  page(title, back, form, summary,
    h("div", { class: "topics" }, h("div", { class: "topic-map-box" }, svg), panel),
    h("section", { "aria-labelledby": "topic-list-title" },
      h("h2", { id: "topic-list-title" }, t("topics.list")), list));
  if (map.clusters.length === 1) select(map.clusters[0]);
}

