// People in the UI: the login page, and the Settings sections of a logged-in person — their account (password,
// logging out), their API keys for programs, and for admins the team's accounts and the audit log.
import { api, logIn, logOut, session } from "/static/api.js";
import { formatDate, h, message, page, rich, showError } from "/static/dom.js";
import { t } from "/static/i18n.js";

const ROLES = ["reader", "editor", "admin"];
const SCOPES = { reader: ["read"], editor: ["read", "write"], admin: ["read", "write", "admin"] };

// The login page, shown in place of any page the server refuses without a session; `done` re-renders that page.
export function renderLogin(done) {
  const failure = h("p", { class: "error-text", role: "alert", id: "login-error", hidden: true });
  const login = h("input", { name: "login", autocomplete: "username", required: true, maxlength: 254,
    autocapitalize: "none", spellcheck: "false" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true,
    maxlength: 1024 });
  const button = h("button", { class: "primary", type: "submit" }, t("login.submit"));
  const form = h("form", { class: "card stack narrow", id: "login-form", onsubmit: async (e) => {
    e.preventDefault();
    button.disabled = true;
    failure.hidden = true;
    try {
      await logIn(login.value.trim(), password.value);
      showWho();
      done();
    } catch (err) {
      failure.textContent = err.status === 401 ? t("login.wrong") : message(err);
      failure.hidden = false;
      password.value = "";
      password.focus();
    } finally { button.disabled = false; }
  } },
    h("label", {}, t("login.login"), login),
    h("label", {}, t("login.password"), password),
    failure,
    h("div", {}, button),
    h("p", { class: "muted" }, rich(t("login.help"))));
  page(t("login.title"), form);
  login.focus();
}

// The header's "who is logged in" and its log-out button (empty when nobody is, or with auth off).
export function showWho() {
  const who = document.getElementById("who");
  if (!who) return;
  if (!session.account) { who.replaceChildren(); return; }
  who.replaceChildren(
    h("span", { class: "muted" }, t("who.as", { login: session.account.login, role: t(`role.${session.account.role}`) })),
    h("button", { type: "button", id: "logout", onclick: async () => {
      try { await logOut(); } catch (err) { showError(err); }
      showWho();
      location.hash = "#/kbs";
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    } }, t("who.logout")));
}

// The Settings sections of a logged-in person (nothing with auth off, where there are no accounts).
export async function accountSections() {
  const me = session.account;
  if (!me) return [];
  const sections = [passwordCard(me), await keysCard(me)];
  if (me.role === "admin") sections.push(await peopleCard(me), await auditCard());
  return sections;
}

// After an action that the audit log records, show the new entry (admins see the log under their actions).
async function refreshAudit() {
  const shown = document.getElementById("audit");
  if (shown) shown.replaceWith(await auditCard());
}

function passwordCard(me) {
  const done = h("p", { class: "muted", "aria-live": "polite" });
  const current = h("input", { name: "current_password", type: "password", autocomplete: "current-password",
    required: true, maxlength: 1024 });
  const next = h("input", { name: "new_password", type: "password", autocomplete: "new-password", required: true,
    minlength: 8, maxlength: 1024 });
  return h("form", { class: "card stack", id: "password-form", onsubmit: async (e) => {
    e.preventDefault();
    done.textContent = "";
    try {
      await api("/api/v1/auth/password", { method: "POST",
        json: { current_password: current.value, new_password: next.value } });
      current.value = next.value = "";
      done.textContent = t("account.password.changed");
    } catch (err) { showError(err); }
  } },
    h("h2", {}, t("account.title")),
    h("p", {}, t("who.as", { login: me.login, role: t(`role.${me.role}`) })),
    h("label", {}, t("account.password.current"), current),
    h("label", {}, t("account.password.new"), next),
    h("div", {}, h("button", { type: "submit" }, t("account.password.change"))), done);
}

function secretBox(id, label, secret) { // a secret shown once, selectable, with what to do with it
  return h("div", { class: "notice stack", id, role: "status" },
    h("strong", {}, label), h("code", { class: "secret" }, secret), h("span", {}, t("secret.once")));
}

async function keysCard(me) {
  const keys = await api("/api/v1/keys?mine=true");
  const shown = h("div", { "aria-live": "polite" });
  const rows = keys.map((k) => h("tr", { "data-key": k.prefix },
    h("td", {}, k.name || "—"), h("td", {}, h("code", {}, `${k.prefix}…`)), h("td", {}, k.scope),
    h("td", {}, formatDate(k.created_at)), h("td", {}, k.last_used_at ? formatDate(k.last_used_at) : "—"),
    h("td", {}, k.revoked_at ? t("keys.revoked") : h("button", { type: "button", onclick: async () => {
      try { await api(`/api/v1/keys/${k.id}`, { method: "DELETE" }); await refill(); } catch (err) { showError(err); }
    } }, t("keys.revoke")))));
  const table = keys.length ? h("div", { class: "table-scroll" }, h("table", { id: "my-keys" },
    h("thead", {}, h("tr", {}, ["keys.name", "keys.prefix", "keys.scope", "keys.created", "keys.used", ""]
      .map((k) => h("th", { scope: "col" }, k ? t(k) : "")))), h("tbody", {}, rows)))
    : h("p", { class: "muted" }, t("keys.none"));
  const name = h("input", { name: "name", maxlength: 200 });
  const scope = h("select", { name: "scope" }, SCOPES[me.role].map((s) => h("option", { value: s }, s)));
  const card = h("section", { class: "card stack", id: "keys" },
    h("h2", {}, t("keys.title")), h("p", { class: "muted" }, rich(t("keys.help"))), table,
    h("form", { class: "row", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const made = await api("/api/v1/keys", { method: "POST", json: { name: name.value.trim(), scope: scope.value } });
        await refill();
        document.querySelector("#keys [aria-live]").replaceChildren(secretBox("new-key", t("keys.new"), made.key));
      } catch (err) { showError(err); }
    } },
      h("label", {}, t("keys.name"), name), h("label", {}, t("keys.scope"), scope),
      h("div", {}, h("button", { type: "submit" }, t("keys.create")))),
    shown);
  async function refill() { card.replaceWith(await keysCard(me)); await refreshAudit(); }
  return card;
}

async function peopleCard(me) {
  const people = await api("/api/v1/accounts");
  const shown = h("div", { "aria-live": "polite" });
  const act = (fn) => async () => { try { await fn(); } catch (err) { showError(err); } };
  const rows = people.map((p) => {
    const self = p.id === me.id;
    const role = h("select", { "aria-label": t("people.role.of", { login: p.login }), disabled: self,
      onchange: act(async () => { await api(`/api/v1/accounts/${p.id}`, { method: "PATCH", json: { role: role.value } }); await refill(); }) },
      ROLES.map((r) => h("option", { value: r, selected: r === p.role }, t(`role.${r}`))));
    return h("tr", { "data-login": p.login },
      h("td", {}, p.login), h("td", {}, role),
      h("td", {}, p.disabled ? t("people.disabled") : t("people.enabled")),
      h("td", {}, p.last_login_at ? formatDate(p.last_login_at) : "—"),
      h("td", {}, h("div", { class: "actions" },
        self ? null : h("button", { type: "button", onclick: act(async () => {
          await api(`/api/v1/accounts/${p.id}`, { method: "PATCH", json: { disabled: !p.disabled } });
          await refill();
        }) }, p.disabled ? t("people.enable") : t("people.disable")),
        self ? null : h("button", { type: "button", onclick: act(async () => {
          const reset = await api(`/api/v1/accounts/${p.id}/password`, { method: "POST", json: {} });
          shown.replaceChildren(secretBox("reset-password", t("people.reset.done", { login: p.login }), reset.password));
          await refreshAudit();
        }) }, t("people.reset")))));
  });
  const login = h("input", { name: "login", required: true, maxlength: 254, autocapitalize: "none" });
  const role = h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, t(`role.${r}`))));
  const card = h("section", { class: "card stack", id: "people" },
    h("h2", {}, t("people.title")),
    h("div", { class: "table-scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["people.login", "people.role", "people.status", "people.last", ""]
        .map((k) => h("th", { scope: "col" }, k ? t(k) : "")))), h("tbody", {}, rows))),
    h("form", { class: "row", id: "invite-form", onsubmit: (e) => { e.preventDefault(); return act(async () => {
      const made = await api("/api/v1/accounts", { method: "POST", json: { login: login.value.trim(), role: role.value } });
      await refill();
      document.querySelector("#people [aria-live]").replaceChildren(
        secretBox("invite-password", t("people.invited", { login: made.login }), made.password));
    })(); } },
      h("label", {}, t("people.login"), login), h("label", {}, t("people.role"), role),
      h("div", {}, h("button", { type: "submit" }, t("people.invite")))),
    shown);
  async function refill() { card.replaceWith(await peopleCard(me)); await refreshAudit(); }
  return card;
}

async function auditCard() {
  const [entries, people] = await Promise.all([api("/api/v1/audit?limit=20"), api("/api/v1/accounts")]);
  const logins = new Map(people.map((p) => [`account:${p.id}`, p.login]));
  return h("section", { class: "card stack", id: "audit" },
    h("h2", {}, t("audit.title")),
    entries.length ? h("div", { class: "table-scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["audit.at", "audit.actor", "audit.action", "audit.details"]
        .map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, entries.map((e) => h("tr", {},
        h("td", {}, formatDate(e.at)),
        h("td", {}, logins.has(e.actor) ? logins.get(e.actor) : h("code", {}, e.actor)),
        h("td", {}, h("code", {}, e.action)),
        h("td", {}, Object.entries(e.details).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(" → ") : v}`).join(", ")))))))
      : h("p", { class: "muted" }, t("audit.none")));
}
