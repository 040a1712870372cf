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
// Bumped at every login and logout: an answer to a request of an earlier login
// must not write into the page (or bring a login back).
let generation = 0;
// The one refresh in flight: requests that find the token expired wait for it.
let renewing = null;
// The language last asked for: a slower catalogue must not win over a later click.
let wantedLang = lang;

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
  wantedLang = code;
  if (code === lang) return;
  const loaded = await loadWords(code);
  if (wantedLang !== code) return;
  words = loaded;
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
  for (const alert of $$("form .error")) alert.hidden = true;
  const panel = $("#key-panel");
  if (!panel.hidden) $("#key-title").textContent = t("key.title", { name: panel.dataset.stream });
  setTitle();
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

/// One request to the API. `anonymous` sends no token; `retried` is set on the
/// second try after a renewed token.
async function call(method, path, body, { anonymous = false, retried = false } = {}) {
  const session = anonymous ? null : auth;
  const gen = generation;
  const headers = { Accept: "application/json", "Accept-Language": lang };
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (session) headers.Authorization = `JWT ${session.token}`;
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
  if (gen !== generation) throw new Failure(0, "stale", "");
  if (resp.ok && envelope) return envelope.data;
  const code = envelope?.error ?? "unknown";
  if (resp.status === 401 && code === "token_expired" && session && !retried && (await renewToken(session))) {
    return call(method, path, body, { retried: true });
  }
  const failure = new Failure(
    resp.status, code, envelope?.msg ?? t("error.mismatch"),
    Number.parseInt(resp.headers.get("Retry-After") ?? "0", 10) || 0,
  );
  if (resp.status === 401 && session && session === auth && SESSION_OVER.has(code)) {
    loggedOut(`${failure.message} ${t("notice.session_over")}`, true);
  }
  throw failure;
}

/// A new access token for `session` from its refresh token (which rotates): one
/// refresh at a time, whoever else found the token expired waits for the same one.
/// False when refused or when the login ended meanwhile.
function renewToken(session) {
  if (auth !== session) return Promise.resolve(auth !== null && auth.session_id === session.session_id);
  if (!renewing) {
    const gen = generation;
    renewing = call("POST", "/passport/refresh", { refresh_token: session.refresh_token }, { anonymous: true, retried: true })
      .then((data) => {
        if (gen !== generation || auth !== session) return false;
        auth = { ...session, token: data.token, refresh_token: data.refresh_token };
        return true;
      })
      .catch(() => false)
      .finally(() => { renewing = null; });
  }
  return renewing;
}

// ---------------------------------------------------------------- notices and forms

// The notice is a live region that stays in the page (an empty one takes no
// room), so that screen readers announce each new text.
function notice(text, bad = false) {
  const box = $("#notice");
  box.classList.toggle("bad", bad);
  box.textContent = text;
}

function clearNotice() {
  $("#notice").textContent = "";
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
      if (failure instanceof Failure && failure.code === "stale") return;
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

/// Runs an action (of `button`, disabled meanwhile so that it runs once); a
/// failure becomes a notice.
async function act(action, button = null) {
  if (button?.disabled) return;
  clearNotice();
  if (button) button.disabled = true;
  try {
    await action();
  } catch (failure) {
    if (failure instanceof Failure && (failure.code === "stale" || (!auth && SESSION_OVER.has(failure.code)))) return;
    notice(failureText(failure), true);
  } finally {
    if (button) button.disabled = false;
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
  // Only `#/view` names a view; another fragment (the skip link's) keeps this one.
  if (current !== null && !location.hash.startsWith("#/")) return;
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
  setTitle();
  // Where a screen reader and the keyboard continue after a change of view.
  if (!first) focusOn($(`[data-view=${name}] h1`));
  refreshView();
}

function setTitle() {
  document.title = `${$(`[data-view=${current}] h1`).textContent} · ${t("title")}`;
}

function focusOn(element) {
  element.tabIndex = -1;
  element.focus();
}

/// Loads the data of the view on screen. `data-loaded-view` names the view whose
/// data is on screen and `data-loads` counts the loads done (the tests wait on them).
async function refreshView() {
  const view = current;
  delete document.body.dataset.loadedView;
  const load = VIEWS[view]?.load;
  if (load) await act(load);
  if (current === view) document.body.dataset.loadedView = view;
  document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
}

function go(name) {
  if (location.hash === `#/${name}`) route();
  else location.hash = `#/${name}`;
}

/// The login is over (logged out here, elsewhere, or refused): forget it.
function loggedOut(text, bad = false) {
  auth = null;
  me = null;
  generation += 1;
  hideKey();
  forgetPages();
  go("login");
  if (text) notice(text, bad);
}

/// Nothing of the last login stays in the page for whoever uses it next.
function forgetPages() {
  for (const dd of $$("#profile dd")) dd.textContent = "";
  $("#devices").replaceChildren();
  $("#streams").replaceChildren();
  for (const tab of $$(".streams-tab")) tab.hidden = true;
  for (const form of $$("form")) {
    form.reset();
    $(".error", form).hidden = true;
  }
}

function deviceName() {
  const platform = navigator.userAgentData?.platform || navigator.platform || "";
  return (platform ? `Web · ${platform}` : "Web").slice(0, 128);
}

async function logIn(mobile, password, device) {
  const data = await call("POST", "/passport/login", { mobile, password, device: device || deviceName() });
  generation += 1;
  auth = { token: data.token, refresh_token: data.refresh_token, session_id: data.session_id, user_id: data.user_id };
  go("account");
}

onSubmit($("#login-form"), async ({ mobile, password, device }) => {
  await logIn(mobile.trim(), password, device.trim());
  $("#login-form").reset();
});

onSubmit($("#signup-form"), async ({ mobile, password }) => {
  await call("POST", "/passport/register", { mobile: mobile.trim(), password });
  $("#signup-form").reset();
  try {
    await logIn(mobile.trim(), password, "");
  } catch (failure) {
    // The account exists: what is left is the login, on its own form.
    go("login");
    $("#login-mobile").value = mobile.trim();
    const alert = $("#login-form .error");
    alert.textContent = failureText(failure);
    alert.hidden = false;
  }
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
      end.addEventListener("click", () => logOutHere(end));
    } else {
      end.addEventListener("click", () => act(async () => {
        await call("DELETE", `/passport/sessions/${encodeURIComponent(session.session_id)}`);
        await loadAccount();
        notice(t("devices.ended"));
        focusOn($("#devices-title"));
      }, end));
    }
    return row;
  });
  $("#devices").replaceChildren(...rows);
}

/// Ends this session on the server, then forgets it here. When the server cannot
/// be told (network, 503), the login stays so that "log out" can be tried again:
/// forgetting it here alone would leave a live session behind.
function logOutHere(button) {
  return act(async () => {
    await call("POST", "/passport/logout");
    loggedOut(t("notice.logged_out"));
  }, button);
}

for (const button of $$(".logout")) button.addEventListener("click", () => logOutHere(button));

$("#logout-all").addEventListener("click", (event) => act(async () => {
  await call("POST", "/passport/logout_all");
  loggedOut(t("notice.logged_out_all"));
}, event.currentTarget));

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
  const id = `stream-${stream.name}`;
  const name = $(".stream-name", row);
  name.id = `${id}-name`;
  const select = $("select", row);
  const label = $(".stream-access-label", row);
  select.id = `${id}-access`;
  label.id = `${id}-access-label`;
  label.htmlFor = select.id;
  // Each row's controls are named with their stream ("Who may watch music-night").
  select.setAttribute("aria-labelledby", `${label.id} ${name.id}`);
  select.value = stream.access;
  let saved = stream.access;
  select.addEventListener("change", () => act(async () => {
    try {
      await call("PATCH", `/passport/streams/${stream.name}`, { access: select.value });
      saved = select.value;
      notice(t("streams.access_saved", { name: stream.name }));
    } catch (failure) {
      select.value = saved; // the page shows what the server keeps
      throw failure;
    }
  }));
  const rotate = $(".rotate", row);
  rotate.setAttribute("aria-label", `${t("streams.rotate")}: ${stream.name}`);
  rotate.addEventListener("click", () => act(async () => {
    const { key } = await call("POST", `/passport/streams/${stream.name}/key`);
    showKey(stream.name, key);
    notice(t("streams.rotated", { name: stream.name }));
  }, rotate));
  const remove = $(".delete", row);
  const confirm = $(".confirm", row);
  const question = $(".confirm-text", row);
  question.id = `${id}-confirm`;
  confirm.setAttribute("aria-labelledby", question.id);
  remove.setAttribute("aria-label", `${t("streams.delete")}: ${stream.name}`);
  question.textContent = t("streams.confirm_delete", { name: stream.name });
  const cancel = () => {
    confirm.hidden = true;
    remove.focus();
  };
  remove.addEventListener("click", () => {
    confirm.hidden = false;
    $(".confirm-no", row).focus();
  });
  $(".confirm-no", row).addEventListener("click", cancel);
  confirm.addEventListener("keydown", (event) => {
    if (event.key === "Escape") cancel();
  });
  const yes = $(".confirm-yes", row);
  yes.addEventListener("click", () => act(async () => {
    await call("DELETE", `/passport/streams/${stream.name}`);
    if ($("#key-panel").dataset.stream === stream.name) hideKey();
    await loadStreams();
    notice(t("streams.deleted", { name: stream.name }));
    focusOn($("#stream-list-title"));
  }, yes));
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
  focusOn($("#key-title"));
}

function hideKey() {
  const panel = $("#key-panel");
  panel.hidden = true;
  delete panel.dataset.stream;
  $("#key-value").value = "";
}

$("#key-done").addEventListener("click", () => {
  hideKey();
  focusOn($("#stream-create-title"));
});

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

// The skip link moves the focus; it does not change the view.
$(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  focusOn($("#main"));
});

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
    // The forms post nowhere without this script: their buttons start disabled.
    for (const button of $$("form button[type=submit]")) button.disabled = false;
    route();
    root.dataset.ready = "true";
  });
