// zhiku's web UI: a small hash-routed app over the REST API. No build step, no framework.
import { api, ApiError, fetchFile, loadSession, readEvents, session } from "/static/api.js";
import { accountSections, renderLogin, showWho } from "/static/account.js";
import { clearError, folderOf, formatDate, formatSize, h, marked, message, navigation, page, rich, showError,
  statusBadge } from "/static/dom.js";
import { language, plural, setLanguage, t, translateStatic } from "/static/i18n.js";
import { renderDuplicates } from "/static/duplicates.js";
import { renderTopics } from "/static/topics.js";

// the server's search limits (zhiku.search.options TOP_K and MAX_TOP_K; tests/web/test_limits.py keeps them equal)
const TOP_K = 10;
const MAX_TOP_K = 100;

let pageAbort = new AbortController(); // cancels the current page's streams when the user navigates away

// ---------- knowledge bases ----------
const PRESETS = ["retrieval", "question-answering", "classification", "clustering", "code-search", "bitext",
  "semantic-similarity"];

async function renderKbs() {
  const [kbs, models] = await Promise.all([api("/api/v1/knowledge-bases"), api("/v1/models")]);
  const list = kbs.length ? h("div", { class: "grid" }, kbs.map(kbCard)) : h("p", { class: "muted" }, t("kbs.empty"));
  const custom = h("label", { hidden: true }, t("kbs.custom"), h("input", { name: "custom", maxlength: 2000 }));
  const instruction = h("select", { name: "instruction", onchange: (e) => { custom.hidden = e.target.value !== "custom"; } },
    h("option", { value: "" }, t("kbs.instruction.none")), PRESETS.map((p) => h("option", { value: p }, p)),
    h("option", { value: "custom" }, t("kbs.instruction.custom")));
  const form = h("form", { class: "card stack", onsubmit: createKb },
    h("h2", {}, t("kbs.create")),
    h("div", { class: "row" },
      h("label", {}, t("kbs.name"), h("input", { name: "name", required: true, maxlength: 100 })),
      h("label", {}, t("kbs.model"), h("select", { name: "model" },
        models.data.map((m) => h("option", { value: m.id }, `${m.id} (${m.dimensions})`)))),
      h("label", {}, t("kbs.dimension"), h("input", { name: "dimension", type: "number", min: 32, step: 1 })),
      h("label", {}, t("kbs.chunk"), h("input", { name: "chunk_tokens", type: "number", min: 16, step: 1,
        placeholder: "384" })),
      h("label", {}, t("kbs.instruction"), instruction)),
    custom,
    h("div", {}, h("button", { class: "primary", type: "submit" }, t("kbs.submit"))));
  page(t("kbs.title"), list, form);
}

function kbCard(kb) {
  const total = Object.values(kb.documents).reduce((a, b) => a + b, 0);
  return h("article", { class: "card stack", "data-kb": kb.name },
    h("h2", {}, h("a", { href: `#/kb/${kb.id}` }, kb.name)),
    kb.description ? h("p", { class: "muted" }, kb.description) : null,
    h("p", {}, `${total} ${t("kbs.documents")} (${kb.documents.ready || 0} ${t("kbs.ready")}), ${kb.chunks} ${t("kbs.chunks")}`),
    h("p", { class: "muted" }, `${kb.model} · ${kb.dimension}d`),
    h("div", { class: "row" },
      h("a", { href: `#/kb/${kb.id}` }, t("kbs.open")),
      h("button", { type: "button", class: "danger", onclick: () => deleteKb(kb) }, t("kbs.delete"))));
}

async function createKb(event) {
  event.preventDefault();
  const data = new FormData(event.target);
  const body = { name: String(data.get("name")).trim(), model: data.get("model") || undefined };
  if (data.get("dimension")) body.dimension = Number(data.get("dimension"));
  if (data.get("chunk_tokens")) body.chunk_tokens = Number(data.get("chunk_tokens"));
  const preset = data.get("instruction");
  if (preset === "custom") body.instruction = String(data.get("custom") || "").trim() || undefined;
  else if (preset) body.instruction = preset;
  try {
    const kb = await api("/api/v1/knowledge-bases", { method: "POST", json: body });
    location.hash = `#/kb/${kb.id}`;
  } catch (err) { showError(err); }
}

async function deleteKb(kb) {
  if (!confirm(t("kbs.confirm", { name: kb.name }))) return;
  try { await api(`/api/v1/knowledge-bases/${kb.id}`, { method: "DELETE" }); await renderKbs(); }
  catch (err) { showError(err); }
}

// ---------- documents ----------
async function renderDocs(kbId) {
  const kb = await api(`/api/v1/knowledge-bases/${kbId}`);
  const base = `/api/v1/knowledge-bases/${kb.id}`;
  const tbody = h("tbody");
  const rows = new Map(); // document id (or a temporary key) -> row state
  const jobsByDoc = new Map();

  const columns = [t("docs.file"), t("docs.status"), t("docs.chunks"), t("docs.size"), t("docs.added"),
    t("docs.progress"), t("docs.actions")];
  const table = h("table", { class: "documents" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))), tbody);

  function upsert(key, doc) {
    let row = rows.get(key);
    if (!row) {
      const tr = h("tr");
      row = { tr, progress: h("progress", { max: 1, value: 0 }), detail: h("div", { class: "muted" }) };
      rows.set(key, row);
      tbody.prepend(tr);
    }
    Object.assign(row, doc);
    const status = row.status || "queued";
    const actions = h("div", { class: "row actions" });
    if (row.id && status === "failed" && jobsByDoc.get(row.id)) {
      actions.append(h("button", { type: "button", onclick: () => retry(row) }, t("docs.retry")));
    }
    if (row.id && status === "ready") {
      actions.append(h("button", { type: "button", class: "similar", onclick: () => openSimilar(kb.id, row) }, t("docs.similar")));
    }
    if (row.id) actions.append(h("button", { type: "button", class: "danger", onclick: () => removeDoc(row) }, t("docs.delete")));
    row.progress.value = status === "ready" ? 1 : row.fraction || 0;
    row.progress.setAttribute("aria-label", `${row.filename} ${t(`status.${status}`)}`);
    row.tr.dataset.file = row.filename;
    row.tr.dataset.status = status;
    if (row.source) row.tr.dataset.source = row.source;
    const folder = folderOf(row.source);
    const counted = row.id && (status === "ready" || row.chunk_count);
    row.tr.replaceChildren(
      h("td", { "data-label": t("docs.file") }, h("span", { class: "filename" }, row.filename),
        folder ? h("div", { class: "muted path", title: folder }, folder) : null,
        row.pages ? h("div", { class: "muted pages" }, plural("docs.pages", row.pages)) : null,
        row.tags && row.tags.length ? h("div", { class: "tags" }, row.tags.map((tag) => tagChip(tag, row.auto_tags))) : null,
        nearDuplicates(row.warnings).map((said) =>
          h("div", { class: "near-duplicate" }, h("a", { href: `#/kb/${kb.id}/duplicates` }, t("docs.nearDuplicate", { said }))))),
      h("td", { "data-label": t("docs.status") }, statusBadge(status),
        row.error ? h("div", { class: "error-text" }, row.error) : null),
      h("td", { "data-label": t("docs.chunks"), class: "num chunks" }, counted ? String(row.chunk_count ?? "") : ""),
      h("td", { "data-label": t("docs.size"), class: "num size" }, formatSize(row.size_bytes ?? row.upload_size)),
      h("td", { "data-label": t("docs.added"), class: "added" }, formatDate(row.created_at)),
      h("td", { "data-label": t("docs.progress") }, row.progress, row.detail),
      h("td", { "data-label": t("docs.actions") }, actions.childElementCount ? actions : null));
  }

  // The document as the server has it; `details` only: its name, source, size and date (the live events keep
  // its status and progress).
  async function refreshDoc(id, { details = false } = {}) {
    try {
      const doc = await api(`${base}/documents/${id}`);
      if (details) {
        const { filename, source, size_bytes, created_at } = doc;
        upsert(id, { filename, source, size_bytes, created_at });
      } else upsert(id, { ...doc, fraction: doc.status === "ready" ? 1 : rows.get(id)?.fraction || 0 });
    } catch (err) { if (err.status !== 404) showError(err); }
  }

  async function retry(row) {
    try {
      await api(`/api/v1/jobs/${jobsByDoc.get(row.id)}/retry`, { method: "POST" });
      upsert(row.id, { status: "queued", error: null, fraction: 0 });
    } catch (err) { showError(err); }
  }

  async function removeDoc(row) {
    if (!confirm(t("docs.confirm", { name: row.filename }))) return;
    try {
      await api(`${base}/documents/${row.id}`, { method: "DELETE" });
      row.tr.remove();
      rows.delete(row.id);
    } catch (err) { showError(err); }
  }

  async function uploadOne(file, name) {
    const key = `upload:${name}:${Math.random()}`;
    upsert(key, { filename: name.split("/").pop(), source: `upload:${name}`, upload_size: file.size, status: "uploading" });
    const form = new FormData();
    form.append("files", file, name);
    try {
      const [outcome] = await api(`${base}/documents`, { method: "POST", form });
      const temp = rows.get(key);
      rows.delete(key);
      const existing = rows.get(outcome.document_id); // progress events may have arrived first
      if (existing) temp.tr.remove(); else rows.set(outcome.document_id, temp);
      if (outcome.job_id) jobsByDoc.set(outcome.document_id, outcome.job_id);
      const fresh = { id: outcome.document_id, filename: temp.filename, source: temp.source };
      if (!existing) {
        fresh.status = outcome.outcome === "queued" ? "queued" : outcome.outcome === "duplicate" ? "duplicate" : "ready";
        fresh.error = fresh.status === "duplicate" ? outcome.message : null;
      }
      upsert(outcome.document_id, fresh);
      refreshDoc(outcome.document_id, { details: outcome.outcome === "queued" });
    } catch (err) {
      upsert(key, { status: "failed", error: message(err) });
    }
  }

  async function uploadAll(entries) {
    for (const [file, name] of entries) await uploadOne(file, name); // one at a time: progress stays readable
  }

  const fileInput = h("input", { type: "file", multiple: true, id: "file-input",
    onchange: (e) => { uploadAll([...e.target.files].map((f) => [f, f.name])); e.target.value = ""; } });
  const folderInput = h("input", { type: "file", multiple: true, webkitdirectory: true, id: "folder-input",
    onchange: (e) => { uploadAll([...e.target.files].map((f) => [f, f.webkitRelativePath || f.name])); e.target.value = ""; } });
  const drop = h("div", { class: "drop", id: "drop" },
    h("p", {}, t("docs.drop")),
    h("div", { class: "row centered" },
      h("label", {}, t("docs.files"), fileInput), h("label", {}, t("docs.folder"), folderInput)));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const entries = [];
    const walk = async (entry, prefix) => {
      if (entry.isFile) entries.push([await new Promise((ok, fail) => entry.file(ok, fail)), prefix + entry.name]);
      else if (entry.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
          if (!batch.length) break;
          for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
        }
      }
    };
    for (const item of e.dataTransfer.items) {
      const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
      if (entry) await walk(entry, "");
    }
    uploadAll(entries);
  });

  const syncSummary = (r) => t("sources.result", { added: r.added.length, changed: r.changed.length,
    removed: r.removed.length, unchanged: r.unchanged, skipped: r.skipped.length });
  // Sources kept in sync: git repositories added by URL (folders come from the server's watch_folders setting).
  const sourceList = h("ul", { class: "kb-sources", id: "kb-sources" });
  function sourceItem(source) {
    const result = h("div", { class: "muted sync-result", role: "status" });
    const syncButton = h("button", { type: "button", class: "sync" }, t("sources.sync"));
    syncButton.addEventListener("click", async () => {
      syncButton.disabled = true;
      result.textContent = t("sources.syncing");
      try {
        const report = await api(`${base}/sources/${source.id}/sync`, { method: "POST" });
        for (const path of report.removed) { // their documents are gone
          for (const [key, row] of rows) {
            if (row.source === `source:${source.id}:${path}`) { row.tr.remove(); rows.delete(key); }
          }
        }
        const fresh = sourceItem(report.source); // its new commit, status and time
        fresh.result.textContent = syncSummary(report);
        item.replaceWith(fresh.item);
      } catch (err) {
        result.textContent = "";
        showError(err);
      } finally { syncButton.disabled = false; }
    });
    const removeButton = h("button", { type: "button", class: "danger", onclick: async () => {
      if (!confirm(t("sources.confirm", { name: source.location }))) return;
      try {
        await api(`${base}/sources/${source.id}`, { method: "DELETE" });
        item.remove();
        for (const [key, row] of rows) {
          if ((row.source || "").startsWith(`source:${source.id}:`)) { row.tr.remove(); rows.delete(key); }
        }
      } catch (err) { showError(err); }
    } }, t("sources.remove"));
    const facts = [t(`sources.kind.${source.kind}`), t(`sources.status.${source.status}`)];
    if (source.ref) facts.push(source.ref);
    if (source.commit) facts.push(source.commit.slice(0, 10));
    if (source.synced_at) facts.push(formatDate(source.synced_at));
    const item = h("li", { class: "card source", "data-id": source.id, "data-status": source.status },
      h("div", { class: "row" },
        h("div", { class: "grow" }, h("code", {}, source.location), h("div", { class: "muted" }, facts.join(" · ")),
          source.error ? h("div", { class: "error-text" }, source.error) : null),
        syncButton, removeButton),
      result);
    return { item, result };
  }
  const urlInput = h("input", { type: "url", name: "url", required: true, placeholder: "https://github.com/owner/repo.git",
    "aria-label": t("sources.url") });
  const refInput = h("input", { type: "text", name: "ref", placeholder: "main", "aria-label": t("sources.ref") });
  const addForm = h("form", { class: "row", id: "add-source" },
    h("label", { class: "grow" }, t("sources.url"), urlInput), h("label", {}, t("sources.ref"), refInput),
    h("button", { type: "submit", class: "primary" }, t("sources.add")));
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = addForm.querySelector("button");
    button.disabled = true;
    try {
      const added = await api(`${base}/sources`, { method: "POST",
        json: { url: urlInput.value.trim(), ref: refInput.value.trim() || null } });
      const { item, result } = sourceItem(added.source);
      sourceList.querySelector(`[data-id="${added.source.id}"]`)?.remove();
      sourceList.append(item);
      if (added.sync) result.textContent = syncSummary(added.sync);
      urlInput.value = "";
      refInput.value = "";
    } catch (err) { showError(err); } finally { button.disabled = false; }
  });
  const sources = h("section", { "aria-labelledby": "sources-title" },
    h("h2", { id: "sources-title" }, t("sources.title")), h("p", { class: "muted" }, t("sources.help")),
    sourceList, addForm);

  // Auto-tags: the labels (one per line, "name: what it means"), saved, and a run over every document.
  const labelsInput = h("textarea", { id: "auto-tag-labels", rows: 4, "aria-label": t("tags.labels"),
    placeholder: "finance: budgets, invoices and pay\nhr: hiring, leave and benefits" });
  const tagResult = h("div", { class: "muted", role: "status", id: "auto-tag-result" });
  const parseLabels = () => labelsInput.value.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
    const cut = line.search(/[:：]/);
    return cut < 0 ? { name: line, description: "" } : { name: line.slice(0, cut).trim(), description: line.slice(cut + 1).trim() };
  });
  const showLabels = (labels) => {
    labelsInput.value = labels.map((l) => (l.description ? `${l.name}: ${l.description}` : l.name)).join("\n");
  };
  const saveLabels = h("button", { type: "button", onclick: async () => {
    try {
      const saved = await api(`${base}/auto-tags`, { method: "PUT", json: { labels: parseLabels() } });
      showLabels(saved.labels);
      tagResult.textContent = plural("tags.saved", saved.labels.length);
    } catch (err) { showError(err); }
  } }, t("tags.save"));
  const runTags = h("button", { type: "button", class: "primary", onclick: async () => {
    runTags.disabled = true;
    try {
      const saved = await api(`${base}/auto-tags`, { method: "PUT", json: { labels: parseLabels() } });
      showLabels(saved.labels);
      const done = await api(`${base}/auto-tags/run`, { method: "POST", json: {} });
      const counts = Object.entries(done.by_label).map(([name, n]) => `${name} ${n}`).join(", ");
      tagResult.textContent = `${t("tags.result", done)}${counts ? ` ${counts}` : ""}`;
      for (const id of rows.keys()) if (rows.get(id).id) refreshDoc(id);
    } catch (err) { showError(err); } finally { runTags.disabled = false; }
  } }, t("tags.run"));
  const autoTags = h("section", { "aria-labelledby": "auto-tags-title" },
    h("h2", { id: "auto-tags-title" }, t("tags.title")), h("p", { class: "muted" }, t("tags.help")),
    h("label", { class: "stack" }, t("tags.labels"), labelsInput), h("div", { class: "row" }, saveLabels, runTags), tagResult);
  api(`${base}/auto-tags`).then((saved) => showLabels(saved.labels)).catch(showError);

  page(t("docs.title", { name: kb.name }), drop, sources, autoTags,
    h("p", { class: "row" }, h("a", { href: `#/search?kb=${kb.id}` }, t("docs.search")),
      h("a", { href: `#/kb/${kb.id}/duplicates` }, t("dup.link")),
      h("a", { href: `#/kb/${kb.id}/topics` }, t("topics.open"))), table);
  api(`${base}/sources`).then((list) => { for (const source of list) sourceList.append(sourceItem(source).item); })
    .catch(showError);

  const [documents, jobs] = await Promise.all([api(`${base}/documents`), api(`/api/v1/jobs?knowledge_base_id=${kb.id}&limit=1000`)]);
  for (const job of [...jobs].reverse()) if (job.document_id) jobsByDoc.set(job.document_id, job.id);
  for (const doc of [...documents].reverse()) upsert(doc.id, { ...doc, fraction: doc.status === "ready" ? 1 : 0 });
  if (!documents.length) tbody.append(h("tr", { class: "empty" }, h("td", { colspan: 4, class: "muted" }, t("docs.empty"))));

  readEvents(`${base}/events`, ({ event, data }) => {
    if (event !== "job") return;
    const job = JSON.parse(data);
    if (!job.document_id) return;
    jobsByDoc.set(job.document_id, job.id);
    tbody.querySelector("tr.empty")?.remove();
    if (!rows.has(job.document_id)) { upsert(job.document_id, { id: job.document_id, filename: "…" }); refreshDoc(job.document_id); }
    const stage = job.status === "running" ? job.stage : job.status === "succeeded" ? "ready" : job.status;
    const known = ["queued", "parsing", "embedding", "ready", "failed"].includes(stage) ? stage : "embedding";
    const running = job.status === "running" && job.details && job.details.embedded;
    const detail = running ? plural("docs.embedded", job.details.embedded) : ""; // the Chunks column has the total
    upsert(job.document_id, { id: job.document_id, status: job.status === "cancelled" ? "failed" : known,
      fraction: job.progress, error: job.status === "failed" ? job.error : null });
    rows.get(job.document_id).detail.textContent = detail;
    if (["succeeded", "failed", "cancelled"].includes(job.status)) refreshDoc(job.document_id);
  }, { signal: pageAbort.signal }).catch(showError);
}

// The ingestion's near-duplicate flags among a document's warnings ("near-duplicate of X (kind, similarity 0.9, id …)",
// zhiku.pipeline.duplicate_scan), without their prefix and id (the link leads to the groups).
const NEAR_DUPLICATE = "near-duplicate of ";
function nearDuplicates(warnings) {
  return (warnings || []).map(String).filter((w) => w.startsWith(NEAR_DUPLICATE)).map((w) => w.slice(NEAR_DUPLICATE.length).replace(/, id [0-9a-f]+\)$/, ")"));
}

// A document's tag; an auto-tag says so, with its confidence.
function tagChip(tag, autoTags) {
  const confidence = autoTags && autoTags[tag];
  if (confidence === undefined) return h("span", { class: "tag" }, tag);
  const said = t("tags.auto", { confidence: confidence.toFixed(2) });
  return h("span", { class: "tag auto", title: said, "aria-label": `${tag}, ${said}` }, tag, h("small", {}, ` ${confidence.toFixed(2)}`));
}

// "More like this": the documents nearest to one document (by their document vectors), in a dialog; each found
// document can be followed in turn.
async function openSimilar(kbId, doc) {
  const dialog = document.getElementById("similar") || document.body.appendChild(h("dialog", { id: "similar", "aria-labelledby": "similar-title" }));
  try {
    const found = await api(`/api/v1/knowledge-bases/${kbId}/documents/${doc.id}/similar?top_k=${TOP_K}`);
    const list = h("ol", { class: "similar-list" }, found.map(({ score, document: other }) =>
      h("li", { "data-id": other.id },
        h("div", { class: "row" },
          h("div", { class: "grow" }, h("span", { class: "filename" }, other.filename),
            other.title && other.title !== other.filename ? h("div", { class: "muted" }, other.title) : null),
          h("meter", { min: 0, max: 1, value: Math.max(0, score), "aria-label": t("similar.score", { score: score.toFixed(2) }) }),
          h("span", { class: "num score" }, score.toFixed(2)),
          h("button", { type: "button", onclick: () => openSimilar(kbId, other) }, t("similar.more"))))));
    dialog.replaceChildren(
      h("h2", { id: "similar-title" }, t("similar.title", { name: doc.filename })),
      found.length ? list : h("p", { class: "muted" }, t("similar.none")),
      h("div", { class: "row" }, h("button", { type: "button", class: "primary", onclick: () => dialog.close() }, t("viewer.close"))));
    if (!dialog.open) dialog.showModal();
  } catch (err) { showError(err); }
}

// ---------- search and the page viewer ----------
async function renderSearch(params) {
  const [kbs, facts] = await Promise.all([api("/api/v1/knowledge-bases"), api("/api/v1/ui").catch(() => null)]);
  if (!kbs.length) { page(t("search.title"), h("p", { class: "muted" }, t("search.nokb"))); return; }
  const chat = Boolean(facts && facts.chat && facts.chat.configured);
  const results = h("div", { class: "stack", id: "results", "aria-live": "polite" });
  const form = h("form", { class: "card stack", role: "search", onsubmit: (e) => { e.preventDefault(); runSearch(e.target, results); } },
    h("div", { class: "row" },
      h("label", {}, t("search.kb"), h("select", { name: "kb" },
        kbs.map((kb) => h("option", { value: kb.id, selected: kb.id === params.get("kb") }, kb.name)))),
      h("label", { class: "grow" }, t("search.query"),
        h("input", { name: "query", type: "search", required: true, maxlength: 2000, value: params.get("q") || "" })),
      h("label", {}, t("search.mode"), h("select", { name: "mode" },
        ["hybrid", "dense", "lexical"].map((m) => h("option", { value: m }, t(`mode.${m}`))))),
      h("label", {}, t("search.topk"), h("input", { name: "top_k", type: "number", min: 1, max: MAX_TOP_K, value: TOP_K }))),
    h("div", { class: "row" },
      h("label", { class: "grow" }, t("search.filters"), h("input", { name: "filters", maxlength: 1000 })),
      h("label", { class: "check", title: t(chat ? "search.hyde.title" : "search.hyde.off") },
        h("input", { type: "checkbox", name: "hyde", disabled: !chat }), t("search.hyde")),
      h("div", {}, h("button", { class: "primary", type: "submit" }, t("search.submit")))));
  page(t("search.title"), form, results);
  if (params.get("q")) runSearch(form, results);
}

async function runSearch(form, results) {
  const data = new FormData(form);
  const filters = String(data.get("filters") || "").split(/\s+(?=[\w.-]+\s*(?:>=|<=|!=|=|>|<))/).map((f) => f.trim()).filter(Boolean);
  const body = { query: String(data.get("query")), mode: data.get("mode"), top_k: Number(data.get("top_k") || TOP_K), filters, hyde: data.get("hyde") === "on" };
  results.replaceChildren(h("p", { class: "muted" }, t("loading")));
  try {
    const found = await api(`/api/v1/knowledge-bases/${data.get("kb")}/search`, { method: "POST", json: body });
    results.replaceChildren(
      h("p", { class: "muted" }, found.hits.length ? t("search.took", { n: found.hits.length, ms: Math.round(found.took_ms) }) : t("search.none")),
      ...(found.hypothetical_answer ? [h("p", { class: "muted", id: "hyde-passage" }, t("search.hyde.passage"), " ", h("q", {}, found.hypothetical_answer))] : []),
      ...found.hits.map((hit) => hitCard(found.knowledge_base_id, hit)));
  } catch (err) { results.replaceChildren(); showError(err); }
}

function pages(hit) { return hit.page_start === hit.page_end ? `${hit.page_start}` : `${hit.page_start}-${hit.page_end}`; }

// A few lines of the passage around its first highlight (never cutting one), whitespace folded; the card opens
// the whole passage in its page.
const SNIPPET_CHARS = 260;
function snippet(text, spans) {
  const first = spans.length ? spans[0][0] : 0;
  let end = Math.min(text.length, Math.max(0, first - 60) + SNIPPET_CHARS);
  let start = Math.max(0, end - SNIPPET_CHARS);
  if (start > 0) { const gap = text.slice(start, start + 20).search(/\s/); if (gap >= 0) start += gap + 1; }
  if (end < text.length) { const gap = text.slice(end - 20, end).search(/\s\S*$/); if (gap >= 0) end = end - 20 + gap; }
  for (const [a, b] of spans) { if (a < start && b > start) start = a; if (a < end && b > end) end = b; }
  const inside = spans.filter(([a, b]) => a >= start && b <= end).map(([a, b]) => [a - start, b - start]);
  const nodes = marked(text.slice(start, end), inside)
    .map((node) => (typeof node === "string" ? node.replace(/\s+/g, " ") : node));
  return [start > 0 ? "… " : "", ...nodes, end < text.length ? " …" : ""];
}

function hitCard(kbId, hit) {
  const folder = folderOf(hit.source);
  return h("button", { type: "button", class: "card hit", onclick: () => openViewer(kbId, hit) },
    h("span", { class: "meta" }, h("strong", {}, hit.filename), folder ? h("span", { class: "path" }, folder) : null,
      h("span", {}, t("search.page", { page: pages(hit) })),
      h("span", {}, t("search.score", { score: hit.score.toFixed(3) })),
      hit.ocr_confidence != null ? h("span", { class: "ocr", title: t("search.ocr.title") }, t("search.ocr", { confidence: hit.ocr_confidence.toFixed(2) })) : null,
      hit.heading_path.length ? h("span", {}, hit.heading_path.join(" › ")) : null,
      h("span", { class: "open" }, `${t("search.open")} ›`)),
    hit.context ? h("span", { class: "snippet table-head" }, hit.context) : null,
    h("span", { class: "snippet" }, snippet(hit.text, hit.highlights)));
}

async function openViewer(kbId, hit) {
  const dialog = document.getElementById("viewer") || document.body.appendChild(h("dialog", { id: "viewer", "aria-labelledby": "viewer-title" }));
  try {
    const data = await api(`/api/v1/knowledge-bases/${kbId}/documents/${hit.document_id}/pages/${hit.page_start}`);
    const text = data.text;
    const probe = hit.text.slice(0, 80).trim();
    let at = probe ? text.indexOf(probe) : -1;
    const body = h("div", { class: "viewer", id: "viewer-text", tabindex: 0 });
    if (at >= 0) {
      const end = Math.min(text.length, at + hit.text.length);
      const target = h("mark", { id: "viewer-hit" }, text.slice(at, end));
      body.append(text.slice(0, at), target, text.slice(end));
    } else body.append(text);
    const scanned = data.ocr_confidence != null; // a scan read by OCR: say so, since its text may be misread
    dialog.replaceChildren(
      h("h2", { id: "viewer-title" }, t("viewer.title", { name: hit.filename, page: data.page, pages: data.pages })),
      ...(scanned ? [h("p", { class: "muted" }, t("viewer.ocr", { confidence: data.ocr_confidence.toFixed(2) }))] : []),
      body,
      h("div", { class: "row" },
        h("button", { type: "button", onclick: () => openOriginal(kbId, hit) }, t("viewer.original")),
        h("button", { type: "button", class: "primary", onclick: () => dialog.close() }, t("viewer.close"))));
    dialog.showModal();
    document.getElementById("viewer-hit")?.scrollIntoView({ block: "center" });
  } catch (err) { showError(err); }
}

// An uploaded file must never become a page of this origin (its scripts would act with the session): a PDF opens in a new
// tab as a Blob typed application/pdf, which only Chromium's/Firefox's PDF viewer renders; every other type is
// saved as a download of a Blob typed application/octet-stream, never shown.
async function openOriginal(kbId, hit) {
  try {
    const file = await fetchFile(`/api/v1/knowledge-bases/${kbId}/documents/${hit.document_id}/file`);
    if (file.type === "application/pdf") {
      const url = URL.createObjectURL(new Blob([file.bytes], { type: "application/pdf" }));
      window.open(`${url}#page=${hit.page_start}`, "_blank", "noopener");
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      return;
    }
    const url = URL.createObjectURL(new Blob([file.bytes], { type: "application/octet-stream" }));
    const link = h("a", { href: url, download: hit.filename || "document", hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) { showError(err); }
}

// ---------- chat ----------
async function renderChat() {
  const [kbs, facts] = await Promise.all([api("/api/v1/knowledge-bases"), api("/api/v1/ui").catch(() => null)]);
  const noModel = facts && facts.chat && !facts.chat.configured;
  const notice = noModel ? h("p", { class: "notice", id: "chat-notice", role: "note" }, rich(t("chat.nomodel"))) : null;
  const answer = h("div", { class: "answer card", id: "answer", "aria-live": "polite", hidden: true });
  const heading = h("h2", { id: "sources-heading", hidden: true }, t("chat.sources"));
  const sources = h("ol", { class: "sources", id: "sources", "aria-labelledby": "sources-heading", hidden: true });
  const form = h("form", { class: "card stack", onsubmit: (e) => { e.preventDefault(); ask(e.target, answer, { heading, list: sources }); } },
    h("fieldset", { class: "row" }, h("legend", {}, t("chat.kbs")),
      kbs.map((kb, i) => h("label", { class: "check" },
        h("input", { type: "checkbox", name: "kb", value: kb.id, checked: i === 0 }), kb.name))),
    h("label", {}, t("chat.question"), h("textarea", { name: "question", required: true, maxlength: 10000 })),
    h("div", {}, h("button", { class: "primary", type: "submit" }, t("chat.send"))));
  page(t("chat.title"), notice, kbs.length ? form : h("p", { class: "muted" }, t("search.nokb")), answer, heading, sources);
}

async function ask(form, answer, { heading, list: sourceList }) {
  const data = new FormData(form);
  const ids = data.getAll("kb");
  const button = form.querySelector("button[type=submit]");
  let text = "";
  let sources = [];
  let passagesOnly = false; // no chat model: the reply is the passages, shown in the sources list
  answer.hidden = false;
  answer.replaceChildren(h("span", { class: "muted" }, t("chat.thinking")));
  sourceList.replaceChildren();
  sourceList.hidden = heading.hidden = true;
  button.disabled = true;
  const render = () => {
    const parts = text.split(/(\[\d+\])/);
    answer.replaceChildren(...parts.map((part) => {
      const m = part.match(/^\[(\d+)\]$/);
      const source = m && sources.find((s) => s.index === Number(m[1]));
      return source ? h("button", { type: "button", class: "cite", onclick: () => openViewer(source.knowledge_base_id, { ...source, page_start: source.page_start, highlights: [], heading_path: [] }) }, part) : part;
    }));
  };
  try {
    await readEvents("/api/v1/chat/completions", ({ data: raw }) => {
      if (raw === "[DONE]") return;
      const chunk = JSON.parse(raw);
      if (chunk.error) throw new ApiError(502, chunk.error.message, chunk.error.code);
      if (chunk.retrieval_only) passagesOnly = true;
      if (chunk.sources && chunk.sources.length) {
        sources = chunk.sources;
        sourceList.hidden = heading.hidden = false;
        sourceList.replaceChildren(...sources.map((s) => h("li", {}, h("button", { type: "button", class: "cite",
          onclick: () => openViewer(s.knowledge_base_id, { ...s, highlights: [], heading_path: [] }) },
          `${s.filename} · ${t("search.page", { page: s.page_start })}${s.ocr_confidence != null ? ` · ${t("search.ocr", { confidence: s.ocr_confidence.toFixed(2) })}` : ""}`),
          passagesOnly ? h("p", { class: "snippet" }, s.text.length > 400 ? `${s.text.slice(0, 400)}…` : s.text) : null)));
      }
      if (passagesOnly) { answer.replaceChildren(h("p", { class: "passages-only" }, t("chat.passages"))); return; }
      for (const choice of chunk.choices || []) {
        text += (choice.delta && choice.delta.content) || (choice.message && choice.message.content) || "";
      }
      if (text || !sources.length) render();
    }, { method: "POST", json: { knowledge_base_ids: ids, stream: true, messages: [{ role: "user", content: String(data.get("question")) }] }, signal: pageAbort.signal });
    if (!text && !passagesOnly) { render(); answer.hidden = sources.length > 0; } // sources and no words: the sources say it all
  } catch (err) {
    if (err && err.name === "AbortError") return;
    answer.replaceChildren(h("p", { class: "error-text", role: "alert" }, message(err))); // shown here, once
  } finally { button.disabled = false; }
}

// ---------- settings ----------
async function renderSettings() {
  const theme = localStorage.getItem("zhiku.theme") || "system";
  page(t("settings.title"),
    h("div", { class: "card stack" },
      h("label", {}, t("settings.language"), h("select", { id: "language", onchange: (e) => { setLanguage(e.target.value); refresh(); } },
        h("option", { value: "en", selected: language() === "en" }, "English"),
        h("option", { value: "zh", selected: language() === "zh" }, "中文"))),
      h("label", {}, t("settings.theme"), h("select", { id: "theme", onchange: (e) => { localStorage.setItem("zhiku.theme", e.target.value); applyTheme(); } },
        ["system", "light", "dark"].map((v) => h("option", { value: v, selected: v === theme }, t(`theme.${v}`)))))),
    ...await accountSections());
}

function applyTheme() {
  const choice = localStorage.getItem("zhiku.theme") || "system";
  const dark = choice === "dark" || (choice === "system" && matchMedia("(prefers-color-scheme: dark)").matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
}

// ---------- router ----------
async function refresh() {
  pageAbort.abort();
  pageAbort = new AbortController();
  clearError();
  const viewer = document.getElementById("viewer");
  if (viewer && viewer.open) viewer.close(); // the passage belongs to the page being left
  setLanguage(language());
  translateStatic();
  const [path, query] = (location.hash.slice(1) || "/kbs").split("?");
  const params = new URLSearchParams(query || "");
  for (const link of document.querySelectorAll("nav a")) {
    const current = path.startsWith(link.getAttribute("href").slice(1)) || (path.startsWith("/kb/") && link.getAttribute("href") === "#/kbs");
    current ? link.setAttribute("aria-current", "page") : link.removeAttribute("aria-current");
  }
  if (session.auth === "on" && !session.account) { renderLogin(refresh); return; } // nothing works without
  try {
    if (/^\/kb\/[^/]+\/duplicates$/.test(path)) await renderDuplicates(decodeURIComponent(path.split("/")[2]), params);
    else if (/^\/kb\/[^/]+\/topics$/.test(path)) await renderTopics(decodeURIComponent(path.slice(4, -7)), params);
    else if (path.startsWith("/kb/")) await renderDocs(decodeURIComponent(path.slice(4)));
    else if (path === "/search") await renderSearch(params);
    else if (path === "/chat") await renderChat();
    else if (path === "/settings") await renderSettings();
    else await renderKbs();
  } catch (err) { // the page could not load: say so on the page, once (the alert is for failed actions)
    if (err && err.name === "AbortError") return;
    if (err instanceof ApiError && err.status === 401) renderLogin(refresh); // then back to the page asked for
    else page(t("error.title"), h("p", { class: "error-text" }, message(err)));
  }
}

document.getElementById("alert-close").addEventListener("click", clearError);
window.addEventListener("hashchange", () => { navigation.navigated = true; refresh(); });
window.addEventListener("unhandledrejection", (e) => showError(e.reason));
applyTheme();
loadSession().catch(() => null).then(() => { showWho(); refresh(); });
