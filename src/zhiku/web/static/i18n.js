// The UI's words in English and Chinese; `t(key, vars)` picks the current language.

const WORDS = {
  en: {
    skip: "Skip to content", loading: "Loading…", close: "Close",
    "nav.kbs": "Knowledge bases", "nav.search": "Search", "nav.chat": "Chat", "nav.settings": "Settings",
    "kbs.title": "Knowledge bases", "kbs.empty": "No knowledge bases yet. Create one below.",
    "kbs.create": "Create a knowledge base", "kbs.name": "Name", "kbs.model": "Embedding model",
    "kbs.dimension": "Dimension (Matryoshka, optional)", "kbs.instruction": "Query instruction",
    "kbs.instruction.none": "Model default", "kbs.instruction.custom": "Custom…", "kbs.custom": "Custom instruction",
    "kbs.chunk": "Chunk size (tokens)", "kbs.submit": "Create", "kbs.documents": "documents", "kbs.chunks": "chunks",
    "kbs.ready": "ready", "kbs.open": "Open", "kbs.delete": "Delete",
    "kbs.confirm": "Delete knowledge base “{name}” and all its documents? This cannot be undone.",
    "kbs.created": "Created {name}.",
    "docs.title": "Documents of {name}", "docs.drop": "Drop files or folders here, or",
    "docs.files": "choose files", "docs.folder": "choose a folder", "docs.file": "File", "docs.status": "Status",
    "docs.progress": "Progress", "docs.actions": "Actions", "docs.retry": "Retry", "docs.delete": "Delete",
    "docs.confirm": "Delete “{name}”?", "docs.empty": "No documents yet.",
    "docs.pages.one": "{n} page", "docs.pages.other": "{n} pages", "docs.chunks": "Chunks", "docs.size": "Size",
    "docs.embedded.one": "{n} chunk embedded", "docs.embedded.other": "{n} chunks embedded",
    "docs.added": "Added",
    "docs.search": "Search this knowledge base",
    "sources.title": "Sources kept in sync",
    "sources.help": "Git repositories whose files this knowledge base keeps up to date. Sync fetches the newest commit: changed files get a new version, deleted files are removed, untouched files are not read again.",
    "sources.url": "Repository URL", "sources.ref": "Branch or tag (optional)", "sources.add": "Add repository",
    "sources.sync": "Sync", "sources.syncing": "Syncing…", "sources.remove": "Remove",
    "sources.confirm": "Stop syncing {name} and delete its documents?",
    "sources.result": "{added} added, {changed} changed, {removed} removed, {unchanged} unchanged, {skipped} skipped",
    "sources.kind.git": "git", "sources.kind.folder": "folder",
    "sources.status.new": "not synced yet", "sources.status.syncing": "syncing", "sources.status.synced": "synced",
    "sources.status.failed": "last sync failed",
    "status.uploading": "uploading", "status.queued": "queued", "status.parsing": "parsing",
    "status.embedding": "embedding", "status.ready": "ready", "status.duplicate": "duplicate",
    "status.failed": "failed", "status.unchanged": "unchanged",
    "search.title": "Search", "search.kb": "Knowledge base", "search.query": "Question or keywords",
    "search.mode": "Mode", "mode.hybrid": "Hybrid", "mode.dense": "Semantic", "mode.lexical": "Keyword",
    "search.topk": "Results", "search.filters": "Filters (e.g. tag=policy date>=2024-01-01)",
    "search.submit": "Search", "search.none": "No results.", "search.page": "page {page}", "search.score": "score {score}",
    "search.ocr": "OCR {confidence}", "search.ocr.title": "Read by OCR from a scanned page, with this confidence (0-1)",
    "search.took": "{n} results in {ms} ms", "search.nokb": "Create a knowledge base first.",
    "search.open": "Open the passage",
    "viewer.title": "{name} — page {page} of {pages}",
    "viewer.ocr": "This page is a scan: its text was read by OCR (confidence {confidence}) and may contain misread characters.", "viewer.original": "Open the original file",
    "viewer.close": "Close",
    "chat.title": "Chat", "chat.kbs": "Answer from", "chat.question": "Your question", "chat.send": "Ask",
    "chat.sources": "Sources", "chat.thinking": "Retrieving and answering…",
    "chat.passages": "No chat model is configured, so there is no written answer: these are the passages that best match your question.",
    "chat.nomodel": "No chat model is configured, so zhiku cannot write answers here; a question gets the passages that best match it. To enable answers, set `ZHIKU_CHAT_URL` to an OpenAI-compatible server (Ollama, vLLM, …; e.g. `http://127.0.0.1:11434/v1`) and `ZHIKU_CHAT_MODEL` to its model name, then restart `zhiku serve`.",
    "settings.title": "Settings", "settings.key": "API key", "settings.key.help": "Stored in this browser only.",
    "settings.save": "Save", "settings.saved": "Saved.", "settings.language": "Language", "settings.theme": "Theme",
    "theme.light": "Light", "theme.dark": "Dark", "theme.system": "System",
    "error.network": "The server cannot be reached. Is zhiku serve running?",
    "error.auth": "The server refused the API key: enter a valid one in Settings.",
    "error.title": "Something went wrong",
    "key.title": "API key needed",
    "key.missing": "This zhiku server needs an API key, and this browser has none yet.",
    "key.refused": "The server does not accept the API key saved in this browser (unknown or revoked).",
    "key.where": "`./scripts/run` (that is, `zhiku serve`) prints an admin key when it starts for the first time; or create one with `zhiku keys create`. Paste it in Settings: it stays in this browser.",
    "key.open": "Open Settings",
    "topics.open": "Topic map", "topics.title": "Topics of {name}", "topics.back": "Back to the documents",
    "topics.loading": "Clustering the documents…", "topics.clusters": "Clusters", "topics.auto": "automatic",
    "topics.apply": "Show", "topics.summary.auto": "{documents} documents in {clusters} topics (number chosen automatically).",
    "topics.summary.asked": "{documents} documents in {clusters} topics.",
    "topics.empty": "No ready documents yet: the map appears once documents are ingested.",
    "topics.pick": "Choose a topic on the map or in the list to see its documents.",
    "topics.documents.one": "{n} document", "topics.documents.other": "{n} documents",
    "topics.search": "Search this knowledge base for these terms", "topics.map": "Map of the topics",
    "topics.list": "All topics",
  },
  zh: {
    skip: "跳到正文", loading: "加载中…", close: "关闭",
    "nav.kbs": "知识库", "nav.search": "搜索", "nav.chat": "问答", "nav.settings": "设置",
    "kbs.title": "知识库", "kbs.empty": "还没有知识库，请在下方创建。",
    "kbs.create": "新建知识库", "kbs.name": "名称", "kbs.model": "嵌入模型",
    "kbs.dimension": "维度（Matryoshka，可选）", "kbs.instruction": "查询指令",
    "kbs.instruction.none": "模型默认", "kbs.instruction.custom": "自定义…", "kbs.custom": "自定义指令",
    "kbs.chunk": "分块大小（token）", "kbs.submit": "创建", "kbs.documents": "个文档", "kbs.chunks": "个分块",
    "kbs.ready": "就绪", "kbs.open": "打开", "kbs.delete": "删除",
    "kbs.confirm": "删除知识库“{name}”及其全部文档？此操作无法撤销。",
    "kbs.created": "已创建 {name}。",
    "docs.title": "{name} 的文档", "docs.drop": "把文件或文件夹拖到这里，或",
    "docs.files": "选择文件", "docs.folder": "选择文件夹", "docs.file": "文件", "docs.status": "状态",
    "docs.progress": "进度", "docs.actions": "操作", "docs.retry": "重试", "docs.delete": "删除",
    "docs.confirm": "删除“{name}”？", "docs.empty": "还没有文档。",
    "docs.pages.one": "{n} 页", "docs.pages.other": "{n} 页", "docs.chunks": "分块", "docs.size": "大小",
    "docs.embedded.one": "已向量化 {n} 个分块", "docs.embedded.other": "已向量化 {n} 个分块",
    "docs.added": "添加时间",
    "docs.search": "搜索这个知识库",
    "sources.title": "同步的来源",
    "sources.help": "这个知识库保持同步的 Git 仓库。同步会获取最新的提交：改动的文件生成新版本，删除的文件被移除，未改动的文件不会重新读取。",
    "sources.url": "仓库地址", "sources.ref": "分支或标签（可选）", "sources.add": "添加仓库",
    "sources.sync": "同步", "sources.syncing": "正在同步…", "sources.remove": "移除",
    "sources.confirm": "停止同步 {name} 并删除它的文档？",
    "sources.result": "新增 {added}，改动 {changed}，删除 {removed}，未变 {unchanged}，跳过 {skipped}",
    "sources.kind.git": "git", "sources.kind.folder": "文件夹",
    "sources.status.new": "尚未同步", "sources.status.syncing": "正在同步", "sources.status.synced": "已同步",
    "sources.status.failed": "上次同步失败",
    "status.uploading": "上传中", "status.queued": "排队中", "status.parsing": "解析中",
    "status.embedding": "向量化中", "status.ready": "就绪", "status.duplicate": "重复",
    "status.failed": "失败", "status.unchanged": "未变化",
    "search.title": "搜索", "search.kb": "知识库", "search.query": "问题或关键词",
    "search.mode": "方式", "mode.hybrid": "混合", "mode.dense": "语义", "mode.lexical": "关键词",
    "search.topk": "结果数", "search.filters": "过滤（如 tag=制度 date>=2024-01-01）",
    "search.submit": "搜索", "search.none": "没有结果。", "search.page": "第 {page} 页", "search.score": "得分 {score}",
    "search.ocr": "OCR 识别 {confidence}", "search.ocr.title": "此段由 OCR 从扫描页识别，数值为识别置信度（0-1）",
    "search.took": "{n} 条结果，用时 {ms} 毫秒", "search.nokb": "请先创建知识库。",
    "search.open": "查看整段",
    "viewer.title": "{name} — 第 {page} 页，共 {pages} 页",
    "viewer.ocr": "此页为扫描件：文字由 OCR 识别（置信度 {confidence}），可能有识别错误。", "viewer.original": "打开原始文件",
    "viewer.close": "关闭",
    "chat.title": "问答", "chat.kbs": "依据的知识库", "chat.question": "你的问题", "chat.send": "提问",
    "chat.sources": "来源", "chat.thinking": "正在检索并回答…",
    "chat.passages": "未配置问答模型，因此没有生成的回答：以下是与问题最相关的原文段落。",
    "chat.nomodel": "没有配置问答模型，zhiku 无法在这里生成回答；提问会得到最相关的原文段落。要启用回答，请把 `ZHIKU_CHAT_URL` 设为一个 OpenAI 兼容的服务（Ollama、vLLM 等，如 `http://127.0.0.1:11434/v1`），`ZHIKU_CHAT_MODEL` 设为其模型名，然后重启 `zhiku serve`。",
    "settings.title": "设置", "settings.key": "API 密钥", "settings.key.help": "只保存在本浏览器中。",
    "settings.save": "保存", "settings.saved": "已保存。", "settings.language": "语言", "settings.theme": "主题",
    "theme.light": "浅色", "theme.dark": "深色", "theme.system": "跟随系统",
    "error.network": "无法连接服务器。zhiku serve 在运行吗？",
    "error.auth": "服务器不接受这个 API 密钥：请在“设置”中填写有效的密钥。",
    "error.title": "出错了",
    "key.title": "需要 API 密钥",
    "key.missing": "这个 zhiku 服务器需要 API 密钥，本浏览器还没有保存。",
    "key.refused": "服务器不接受本浏览器保存的 API 密钥（未知或已吊销）。",
    "key.where": "`./scripts/run`（即 `zhiku serve`）第一次启动时会打印一个管理员密钥；也可以用 `zhiku keys create` 创建。把它粘贴到“设置”中：它只保存在本浏览器里。",
    "key.open": "打开设置",
    "topics.open": "主题地图", "topics.title": "{name} 的主题", "topics.back": "返回文档列表",
    "topics.loading": "正在对文档聚类…", "topics.clusters": "主题数", "topics.auto": "自动",
    "topics.apply": "显示", "topics.summary.auto": "{documents} 个文档，{clusters} 个主题（数量自动选择）。",
    "topics.summary.asked": "{documents} 个文档，{clusters} 个主题。",
    "topics.empty": "还没有就绪的文档：文档入库后即可看到主题地图。",
    "topics.pick": "在地图或列表中选择一个主题，查看它的文档。",
    "topics.documents.one": "{n} 个文档", "topics.documents.other": "{n} 个文档",
    "topics.search": "在知识库中搜索这些词", "topics.map": "主题地图",
    "topics.list": "全部主题",
  },
};

export function language() {
  const saved = localStorage.getItem("zhiku.lang");
  if (saved === "en" || saved === "zh") return saved;
  return navigator.language && navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function setLanguage(lang) {
  localStorage.setItem("zhiku.lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function t(key, vars = {}) {
  const text = WORDS[language()][key] ?? WORDS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

// "{n} page" / "{n} pages": the plural form of `key` for n in the current language (`key.one`, `key.other`).
export function plural(key, n) {
  const form = new Intl.PluralRules(language() === "zh" ? "zh-CN" : "en").select(n);
  return t(`${key}.${form === "one" ? "one" : "other"}`, { n });
}

export function translateStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}
