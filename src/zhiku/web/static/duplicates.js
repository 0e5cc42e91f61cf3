// Near-duplicates of a knowledge base (#/kb/<id>/duplicates): groups of documents (or chunks) that say the same
// thing — edited copies, re-saved versions, translations — shown side by side, with "keep this one".
import { api } from "/static/api.js";
import { formatDate, h, page, showError } from "/static/dom.js";
import { t } from "/static/i18n.js";

const LANGUAGES = { zh: "zh", ja: "ja", ko: "ko" }; // a text's script hint -> its lang attribute (fonts, reading)

export async function renderDuplicates(kbId, params = new URLSearchParams()) {
  const kb = await api(`/api/v1/knowledge-bases/${kbId}`);
  const level = params.get("level") === "chunks" ? "chunks" : "documents";
  const results = h("div", { class: "stack", id: "dup-groups", "aria-live": "polite" });
  const threshold = h("input", { name: "threshold", type: "number", min: 0.5, max: 1, step: 0.01,
    value: params.get("threshold") || "", placeholder: "0.85" });
  const levelSelect = h("select", { name: "level" },
    ["documents", "chunks"].map((v) => h("option", { value: v, selected: v === level }, t(`dup.level.${v}`))));
  const form = h("form", { class: "card row", id: "dup-form", onsubmit: (e) => {
    e.preventDefault();
    const query = new URLSearchParams({ level: levelSelect.value });
    if (threshold.value) query.set("threshold", threshold.value);
    location.hash = `#/kb/${kb.id}/duplicates?${query}`;
  } },
    h("label", {}, t("dup.level"), levelSelect),
    h("label", {}, t("dup.threshold"), threshold),
    h("div", {}, h("button", { class: "primary", type: "submit" }, t("dup.find"))));
  page(t("dup.title", { name: kb.name }),
    h("p", {}, h("a", { href: `#/kb/${kb.id}` }, `‹ ${t("dup.back")}`)),
    h("p", { class: "muted" }, t("dup.help")), form, results);
  await load(kb, level, threshold.value, results);
}

async function load(kb, level, threshold, results) {
  results.replaceChildren(h("p", { class: "muted" }, t("loading")));
  const query = new URLSearchParams({ level });
  if (threshold) query.set("threshold", threshold);
  let found;
  try { found = await api(`/api/v1/knowledge-bases/${kb.id}/duplicates?${query}`); }
  catch (err) { results.replaceChildren(); showError(err); return; }
  if (!found.groups.length) {
    results.replaceChildren(h("p", { class: "muted", id: "dup-none" }, t("dup.none", { threshold: found.threshold.toFixed(2) })));
    return;
  }
  results.replaceChildren(
    h("p", { class: "muted" }, t("dup.count", { n: found.groups.length, threshold: found.threshold.toFixed(2) })),
    ...found.groups.map((group, i) => groupCard(kb, found, group, i, () => load(kb, level, threshold, results))));
}

function groupCard(kb, found, group, index, reload) {
  const documents = found.level === "documents";
  const kinds = group.kinds.map((k) => h("span", { class: `dup-kind ${k}` }, t(`dup.kind.${k}`)));
  const title = h("h2", { id: `dup-group-${index}` }, t("dup.group", { n: index + 1 }));
  return h("section", { class: "card stack dup-group", "aria-labelledby": `dup-group-${index}`, "data-kinds": group.kinds.join(" ") },
    h("div", { class: "dup-head" }, title, ...kinds,
      h("span", { class: "muted" }, t("dup.weakest", { score: group.score.toFixed(3) }))),
    h("div", { class: "dup-members" }, group.members.map((member, i) => memberColumn(kb, found, group, member, i, documents, reload))));
}

function memberColumn(kb, found, group, member, position, documents, reload) {
  const facts = [member.language ? t(`dup.lang.${member.language}`) : null, t("dup.score", { score: member.score.toFixed(3) }),
    documents ? t("dup.chunks", { n: member.chunk_count }) : t("dup.chunk", { n: member.ordinal + 1, page: member.page }),
    formatDate(member.created_at)].filter(Boolean);
  const keep = documents ? h("button", { type: "button", class: position === group.keep ? "primary" : "",
    "aria-label": `${t("dup.keep")}: ${member.filename}`,
    onclick: () => keepOne(kb, found, group, member, reload) }, t("dup.keep")) : null;
  return h("article", { class: "dup-member", "data-file": member.filename },
    h("h3", {}, member.filename, documents && position === group.keep
      ? h("span", { class: "dup-suggested", title: t("dup.suggested.title") }, t("dup.suggested")) : null),
    member.title && member.title !== member.filename ? h("p", { class: "muted" }, member.title) : null,
    h("p", { class: "muted dup-facts" }, facts.join(" · ")),
    h("blockquote", { class: "dup-text", lang: LANGUAGES[member.language] || null }, member.text),
    keep);
}

async function keepOne(kb, found, group, member, reload) {
  const others = group.members.filter((m) => m.document_id !== member.document_id).map((m) => m.filename);
  if (!confirm(t("dup.confirm", { name: member.filename, others: others.join(", ") }))) return;
  try {
    await api(`/api/v1/knowledge-bases/${kb.id}/duplicates/resolve`, { method: "POST",
      json: { threshold: found.threshold, keep: [member.document_id] } });
    await reload();
  } catch (err) { showError(err); }
}
