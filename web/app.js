// Passport's pages: a small script over the same JSON API any client uses.
//
// The tokens live in this module's memory only: not in localStorage, not in
// sessionStorage, not in a cookie. A reload or a closed tab asks for the password
// again; an expired access token is renewed with the refresh token while the page
// stays open. Texts come from the catalogue of the page's language
// (/assets/i18n/<lang>.json); the API's own messages (`msg`) arrive in that
// language because every request says it in Accept-Language.

const root = document.documentElement;
let lang = root.dataset.lang || "en";
let words = {};
let auth = null; // {token, refresh_token, session_id, user_id}
let me = null;

// 401 codes that mean the login is over (as opposed to a wrong old password).
const SESSION_OVER = new Set([
  "missing_credentials", "malformed_credentials", "invalid_token", "token_expired",
  "session_revoked", "session_replaced", "account_disabled",
]);

const $ = (selector, from = document) => from.querySelector(selector);
const $$ = (selector, from = document) => Array.from(from.querySelectorAll(selector));

// ---------------------------------------------------------------- words

function t(key, args = {}) {
  let text = words[key] ?? key;
  for (const [name, value] of Object.entries(args)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

async function loadWords(code) {
  const resp = await fetch(`/assets/i18n/${code}.json`, { credentials: "omit" });
  if (!resp.ok) throw new Error(`catalogue ${code}: ${resp.status}`);
  return resp.json();
}

/// Writes every `data-t` text of the document (and of the row templates) in `words`.
function translate() {
  const scopes = [document, ...$$("template").map((tpl) => tpl.content)];
  for (const scope of scopes) {
    for (const el of $$("[data-t]", scope)) el.textContent = t(el.dataset.t, el.dataset);
    for (const el of $$("[data-t-placeholder]", scope)) el.placeholder = t(el.dataset.tPlaceholder);
    for (const el of $$("[data-t-aria-label]", scope)) el.setAttribute("aria-label", t(el.dataset.tAriaLabel));
  }
}

async function switchLanguage(code) {
  if (code === lang) return;
  words = await loadWords(code);
  lang = code;
  root.lang = code === "zh" ? "zh-CN" : "en";
  root.dataset.lang = code;
  translate();
  for (const a of $$(".langs a")) {
    if (a.dataset.lang === code) a.setAttribute("aria-current", "true");
    else a.removeAttribute("aria-current");
  }
  // Remembered for the next visit; not a credential.
  document.cookie = `passport_lang=${code}; path=/; max-age=31536000; samesite=lax`;
  history.replaceState(null, "", `?lang=${code}${location.hash}`);
  clearNotice();
  await refreshView();
}

function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en");
}

// ---------------------------------------------------------------- the API

class Failure extends Error {
  constructor(status, code, message, retryAfter = 0) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function call(method, path, body, renew = true) {
  const headers = { Accept: "application/json", "Accept-Language": lang };
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (auth) headers.Authorization = `JWT ${auth.token}`;
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new Failure(0, "network", t("error.network"));
  }
  let envelope = null;
  try {
    envelope = await resp.json();
  } catch {
    // Not our envelope (a proxy's error page): reported below.
  }
  if (resp.ok && envelope) return envelope.data;
  const code = envelope?.error ?? "unknown";
  if (resp.status === 401 && code === "token_expired" && renew && auth && (await renewToken())) {
    return call(method, path, body, false);
  }
  const failure = new Failure(
    resp.status, code, envelope?.msg ?? t("error.mismatch"),
    Number.parseInt(resp.headers.get("Retry-After") ?? "0", 10) || 0,
  );
  if (resp.status === 401 && auth && SESSION_OVER.has(code)) loggedOut(`${failure.message} ${t("notice.session_over")}`, true);
  throw failure;
}

/// A new access token from the refresh token (which rotates); false when refused.
async function renewToken() {
  const refreshToken = auth.refresh_token;
  const saved = auth;
  auth = null;
  try {
    const data = await call("POST", "/passport/refresh", { refresh_token: refreshToken }, false);
    auth = { ...saved, token: data.token, refresh_token: data.refresh_token };
    return true;
  } catch {
    auth = saved;
    return false;
  }
}

// ---------------------------------------------------------------- notices and forms

function notice(text, bad = false) {
  const box = $("#notice");
  box.textContent = text;
  box.classList.toggle("bad", bad);
  box.hidden = false;
}

function clearNotice() {
  const box = $("#notice");
  box.hidden = true;
  box.textContent = "";
}

/// The words for a failure, with the wait when the server asked for one.
function failureText(failure) {
  if (!(failure instanceof Failure)) return t("error.mismatch");
  if (failure.retryAfter > 0) return `${failure.message} ${t("error.retry_after", { seconds: failure.retryAfter })}`;
  return failure.message;
}

/// Submits `form` through `action(fields)`; a failure is shown in the form's alert,
/// and a `Retry-After` keeps the button disabled for that long.
function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("button[type=submit]", form);
    const alert = $(".error", form);
    alert.hidden = true;
    clearNotice();
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    let wait = 0;
    try {
      await action(Object.fromEntries(new FormData(form)));
    } catch (failure) {
      if (!auth && failure instanceof Failure && SESSION_OVER.has(failure.code) && form.closest("[data-view=account],[data-view=streams]")) return;
      alert.textContent = failureText(failure);
      alert.hidden = false;
      wait = failure instanceof Failure ? Math.min(failure.retryAfter, 3600) : 0;
    } finally {
      form.removeAttribute("aria-busy");
      if (wait > 0) setTimeout(() => { button.disabled = false; }, wait * 1000);
      else button.disabled = false;
    }
  });
}

/// Runs a button's action; a failure becomes a notice.
async function act(action) {
  clearNotice();
  try {
    await action();
  } catch (failure) {
    if (failure instanceof Failure && !auth && SESSION_OVER.has(failure.code)) return;
    notice(failureText(failure), true);
  }
}

// ---------------------------------------------------------------- views

const VIEWS = {
  login: { signedIn: false },
  signup: { signedIn: false },
  account: { signedIn: true, load: loadAccount },
  streams: { signedIn: true, load: loadStreams },
};
let current = null;

function route() {
  let name = location.hash.replace(/^#\/?/, "");
  if (!VIEWS[name]) name = auth ? "account" : "login";
  if (VIEWS[name].signedIn !== Boolean(auth)) name = auth ? "account" : "login";
  if (location.hash !== `#/${name}`) history.replaceState(null, "", `#/${name}`);
  const first = current === null;
  current = name;
  for (const section of $$(".view")) section.hidden = section.dataset.view !== name;
  for (const a of $$(".tabs a")) {
    if (a.dataset.tab === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (name !== "streams") hideKey();
  // Where a screen reader and the keyboard continue after a change of view.
  if (!first) {
    const heading = $(`[data-view=${name}] h1`);
    heading.tabIndex = -1;
    heading.focus();
  }
  refreshView();
}

async function refreshView() {
  const load = VIEWS[current]?.load;
  if (load) await act(load);
}

function go(name) {
  if (location.hash === `#/${name}`) route();
  else location.hash = `#/${name}`;
}

/// The login is over (logged out here, elsewhere, or refused): forget it.
function loggedOut(text, bad = false) {
  auth = null;
  me = null;
  hideKey();
  go("login");
  if (text) notice(text, bad);
}

function deviceName() {
  const platform = navigator.userAgentData?.platform || navigator.platform || "";
  return (platform ? `Web · ${platform}` : "Web").slice(0, 128);
}

async function logIn(mobile, password, device) {
  const data = await call("POST", "/passport/login", { mobile, password, device: device || deviceName() });
  auth = { token: data.token, refresh_token: data.refresh_token, session_id: data.session_id, user_id: data.user_id };
  go("account");
}

onSubmit($("#login-form"), async ({ mobile, password, device }) => {
  await logIn(mobile.trim(), password, device.trim());
  $("#login-form").reset();
});

onSubmit($("#signup-form"), async ({ mobile, password }) => {
  await call("POST", "/passport/register", { mobile: mobile.trim(), password });
  await logIn(mobile.trim(), password, "");
  $("#signup-form").reset();
});

// ---------------------------------------------------------------- account

async function loadMe() {
  me = await call("GET", "/passport/me");
  for (const tab of $$(".streams-tab")) tab.hidden = !me.roles.includes("streamer");
}

async function loadAccount() {
  const [, list] = await Promise.all([loadMe(), call("GET", "/passport/sessions")]);
  $("#profile-mobile").textContent = me.mobile;
  $("#profile-user-id").textContent = String(me.user_id);
  $("#profile-roles").textContent = me.roles.join(", ");
  $("#profile-created-at").textContent = when(me.created_at);
  $("#profile-last-login").textContent = when(me.last_login);
  renderDevices(list.sessions);
}

function renderDevices(sessions) {
  const rows = sessions.map((session, i) => {
    const row = $("#device-row").content.firstElementChild.cloneNode(true);
    const name = $(".device-name", row);
    name.id = `device-${i}`;
    name.textContent = session.device || t("devices.unnamed");
    $(".device-ip", row).textContent = session.ip ?? "";
    $(".device-since", row).textContent = t("devices.since", { time: when(session.created_at) });
    $(".this-device", row).hidden = !session.current;
    const end = $(".end-device", row);
    end.setAttribute("aria-describedby", name.id);
    if (session.current) {
      end.textContent = t("account.logout");
      end.addEventListener("click", logOutHere);
    } else {
      end.addEventListener("click", () => act(async () => {
        await call("DELETE", `/passport/sessions/${encodeURIComponent(session.session_id)}`);
        await loadAccount();
        notice(t("devices.ended"));
      }));
    }
    return row;
  });
  $("#devices").replaceChildren(...rows);
}

function logOutHere() {
  return act(async () => {
    try {
      await call("POST", "/passport/logout");
    } finally {
      // Forgotten here whatever the answer: the token no longer leaves this page.
      if (auth) loggedOut(t("notice.logged_out"));
    }
  });
}

for (const button of $$(".logout")) button.addEventListener("click", logOutHere);

$("#logout-all").addEventListener("click", () => act(async () => {
  await call("POST", "/passport/logout_all");
  loggedOut(t("notice.logged_out_all"));
}));

onSubmit($("#password-form"), async ({ old_password, new_password }) => {
  await call("POST", "/passport/password", { old_password, new_password });
  $("#password-form").reset();
  loggedOut(t("password.changed"));
});

// ---------------------------------------------------------------- streams

async function loadStreams() {
  if (!me) await loadMe();
  const { streams } = await call("GET", "/passport/streams");
  $("#streams-none").hidden = streams.length > 0;
  $("#streams").replaceChildren(...streams.map(streamRow));
}

function streamRow(stream) {
  const row = $("#stream-row").content.firstElementChild.cloneNode(true);
  $(".stream-name", row).textContent = stream.name;
  const select = $("select", row);
  select.id = `access-${stream.name}`;
  select.value = stream.access;
  $(".stream-access-label", row).htmlFor = select.id;
  select.addEventListener("change", () => act(async () => {
    await call("PATCH", `/passport/streams/${stream.name}`, { access: select.value });
    notice(t("streams.access_saved", { name: stream.name }));
  }));
  $(".rotate", row).setAttribute("aria-label", `${t("streams.rotate")}: ${stream.name}`);
  $(".rotate", row).addEventListener("click", () => act(async () => {
    const { key } = await call("POST", `/passport/streams/${stream.name}/key`);
    showKey(stream.name, key);
    notice(t("streams.rotated", { name: stream.name }));
  }));
  const remove = $(".delete", row);
  const confirm = $(".confirm", row);
  remove.setAttribute("aria-label", `${t("streams.delete")}: ${stream.name}`);
  $(".confirm-text", row).textContent = t("streams.confirm_delete", { name: stream.name });
  remove.addEventListener("click", () => {
    confirm.hidden = false;
    $(".confirm-no", row).focus();
  });
  $(".confirm-no", row).addEventListener("click", () => {
    confirm.hidden = true;
    remove.focus();
  });
  $(".confirm-yes", row).addEventListener("click", () => act(async () => {
    await call("DELETE", `/passport/streams/${stream.name}`);
    if ($("#key-panel").dataset.stream === stream.name) hideKey();
    await loadStreams();
    notice(t("streams.deleted", { name: stream.name }));
  }));
  return row;
}

onSubmit($("#stream-form"), async ({ name, access }) => {
  const created = await call("POST", "/passport/streams", { name: name.trim(), access });
  $("#stream-form").reset();
  await loadStreams();
  showKey(created.name, created.key);
  notice(t("streams.created", { name: created.name }));
});

/// What a streamer pastes into OBS as the server: the configured publish URL, else
/// this host's RTMP application `live`.
function publishUrl() {
  return document.body.dataset.publishUrl || `rtmp://${location.hostname}/live`;
}

/// The key is on screen until "done", leaving the view or logging out; it is never
/// fetched again (the API cannot: only its digest is kept).
function showKey(name, key) {
  const panel = $("#key-panel");
  panel.dataset.stream = name;
  $("#key-title").textContent = t("key.title", { name });
  $("#key-server").value = publishUrl();
  $("#key-value").value = key;
  panel.hidden = false;
  $("#key-title").tabIndex = -1;
  $("#key-title").focus();
}

function hideKey() {
  const panel = $("#key-panel");
  panel.hidden = true;
  delete panel.dataset.stream;
  $("#key-value").value = "";
}

$("#key-done").addEventListener("click", hideKey);

for (const button of $$("[data-copy]")) {
  button.addEventListener("click", async () => {
    const input = document.getElementById(button.dataset.copy);
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      notice(t("key.copied"));
    } catch {
      // No clipboard permission: the text stays selected for Ctrl+C.
    }
  });
}

// ---------------------------------------------------------------- start

for (const a of $$(".langs a")) {
  a.addEventListener("click", (event) => {
    event.preventDefault();
    switchLanguage(a.dataset.lang).catch(() => notice(t("error.network"), true));
  });
}

window.addEventListener("hashchange", route);

// The tab of the view on screen reloads it (a new device, a stream made elsewhere).
for (const tab of $$(".tabs a")) {
  tab.addEventListener("click", (event) => {
    if (tab.getAttribute("href") === location.hash) {
      event.preventDefault();
      refreshView();
    }
  });
}

loadWords(lang)
  .then((loaded) => { words = loaded; })
  .catch(() => { /* The server-rendered texts stay; messages fall back to keys. */ })
  .finally(() => {
    route();
    root.dataset.ready = "true";
  });
