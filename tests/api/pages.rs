//! SPEC §14: the web pages, over HTTP (headers, the document, the assets) and in a
//! real headless Chromium (`chromium.rs`): sign up, log in, the account, devices,
//! the password, the streams, both languages, the keyboard alone, accessibility
//! (axe-core), nothing loaded from another origin, and the README's screenshots.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::chromium::{Browser, DESKTOP, PHONE};
use super::helpers::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; \
                   require-trusted-types-for 'script'; trusted-types 'none'";

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_page_and_its_assets_carry_a_strict_policy_and_no_inline_code() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
        ("/assets/i18n/en.json", "application/json"),
        ("/assets/i18n/zh.json", "application/json"),
    ] {
        let r = get(&app, path, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers();
        assert_eq!(h["content-security-policy"], CSP, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}: {:?}",
            h["content-type"]
        );
    }

    let html = get(&app, "/", &[]).await.text().await.unwrap();
    // No inline script, no inline style, no event-handler attribute: the policy would
    // refuse them, and the page must not need them.
    let inline_script = regex::Regex::new(r"<script(?:\s[^>]*)?>").unwrap();
    for tag in inline_script.find_iter(&html) {
        assert!(
            tag.as_str().contains(" src=\"/assets/"),
            "inline script: {}",
            tag.as_str()
        );
    }
    assert!(!html.contains("<style"), "a <style> element");
    assert!(!html.contains(" style=\""), "a style attribute");
    assert!(
        !regex::Regex::new(r"\son[a-z]+=").unwrap().is_match(&html),
        "an on… handler attribute"
    );
    // Every reference stays on this origin, and no text is missing from a catalogue.
    for url in regex::Regex::new(r#"(?:src|href|action)="([^"]*)""#)
        .unwrap()
        .captures_iter(&html)
    {
        let url = &url[1];
        assert!(
            url.starts_with('/') || url.starts_with('#') || url.starts_with('?'),
            "{url}"
        );
        assert!(!url.starts_with("//"), "{url}");
    }
    assert!(!html.contains('⟦'), "a text missing from the catalogue");
    // Every form posts (a form submitted before the script runs must not put the
    // password in a URL), and its button waits for the script.
    let forms = regex::Regex::new(r"<form[^>]*>").unwrap();
    assert_eq!(forms.find_iter(&html).count(), 4);
    for form in forms.find_iter(&html) {
        assert!(form.as_str().contains(r#"method="post""#), "{}", form.as_str());
    }
    assert_eq!(html.matches(r#"<button type="submit" disabled>"#).count(), 4);

    // The script keeps no token anywhere but in memory.
    let script = get(&app, "/assets/app.js", &[]).await.text().await.unwrap();
    let storage = regex::Regex::new(r"\b(localStorage|sessionStorage|indexedDB)\s*[.\[]").unwrap();
    assert!(!storage.is_match(&script), "app.js uses web storage");
    // And writes text, never HTML (the policy's Trusted Types refuse it anyway).
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"] {
        assert!(!script.contains(sink), "app.js uses {sink}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_page_speaks_the_language_asked_for() {
    let app = spawn_app().await;
    let page = |headers: &'static [(&'static str, &'static str)], path: &'static str| {
        let app = &app;
        async move { get(app, path, headers).await }
    };
    let en = page(&[], "/").await.text().await.unwrap();
    assert!(en.contains(r#"<html lang="en""#) && en.contains(">Log in<"), "{en}");

    let zh = page(&[("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5")], "/")
        .await
        .text()
        .await
        .unwrap();
    assert!(zh.contains(r#"<html lang="zh-CN""#) && zh.contains(">登录<"), "{zh}");

    // The switch (?lang=) wins over Accept-Language, and is remembered in a cookie.
    let switched = page(&[("Accept-Language", "zh")], "/?lang=en").await;
    let cookie = switched.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("passport_lang=en;") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(switched.text().await.unwrap().contains(">Log in<"));
    let remembered = page(&[("Accept-Language", "en"), ("Cookie", "passport_lang=zh")], "/").await;
    assert!(remembered.text().await.unwrap().contains(">登录<"));
    // An unknown value is ignored, not an error.
    let odd = page(&[], "/?lang=xx%00").await;
    assert_eq!(odd.status(), StatusCode::OK);
    assert!(odd.headers().get("set-cookie").is_none());
    app.stop().await;
}

#[tokio::test]
async fn the_publish_url_setting_reaches_the_page() {
    let app = spawn_app_with(&[("publish_url", "rtmp://live.example.com/live")]).await;
    let html = get(&app, "/", &[]).await.text().await.unwrap();
    assert!(
        html.contains(r#"data-publish-url="rtmp://live.example.com/live""#),
        "{html}"
    );
    app.stop().await;
    let app = spawn_app().await;
    assert!(!get(&app, "/", &[])
        .await
        .text()
        .await
        .unwrap()
        .contains("data-publish-url"));
    app.stop().await;
}

// ---------------------------------------------------------------- in Chromium

/// Logs in through the page's form and waits for the account view.
async fn log_in(b: &Browser, mobile: &str, password: &str) {
    b.view("login").await;
    b.fill("#login-mobile", mobile).await;
    b.fill("#login-password", password).await;
    b.fill("#login-device", "Laptop").await;
    b.click("#login-form button[type=submit]").await;
    b.view("account").await;
    b.loaded().await;
    b.until(
        "document.querySelector('#profile-user-id').textContent !== ''",
        "the profile",
    )
    .await;
}

async fn rows(b: &Browser, list: &str) -> usize {
    b.eval(&format!("return document.querySelectorAll('{list} > li').length"))
        .await
        .as_u64()
        .unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_signs_up_sees_the_profile_and_ends_another_device() {
    let test = "a_viewer_signs_up_sees_the_profile_and_ends_another_device";
    let app = spawn_app_with(&[("max_sessions", "2")]).await;
    let Some(b) = Browser::start(test, DESKTOP).await else {
        return;
    };
    b.open(&app.url("/")).await;
    b.view("login").await;
    b.click("a[href='#/signup']").await;
    b.view("signup").await;
    b.fill("#signup-mobile", "138 0000 0201").await;
    b.fill("#signup-password", PASSWORD).await;
    b.click("#signup-form button[type=submit]").await;

    // Signed up and logged in at once: the profile is the API's.
    b.view("account").await;
    b.text("#profile-mobile", "+8613800000201").await;
    b.text("#profile-roles", "viewer").await;
    assert_eq!(rows(&b, "#devices").await, 1);

    // A second login elsewhere: after a refresh of the view, two devices.
    let phone = app.login("13800000201", PASSWORD).await;
    let phone_token = phone["token"].as_str().unwrap().to_owned();
    b.click(".view:not([hidden]) .tabs a[data-tab=account]").await;
    b.until("document.querySelectorAll('#devices > li').length === 2", "two devices")
        .await;
    let names = b
        .eval("return Array.from(document.querySelectorAll('#devices .device-name')).map((e) => e.textContent)")
        .await;
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("Web")),
        "{names}"
    );

    // "Log out this device" on the other row ends that session, not this one.
    b.click("#devices > li:not(:has(.this-device:not([hidden]))) .end-device")
        .await;
    b.until(
        "document.querySelectorAll('#devices > li').length === 1",
        "one device left",
    )
    .await;
    b.text("#notice", "logged out").await;
    assert_eq!(app.me(&phone_token).await.status(), StatusCode::UNAUTHORIZED);
    assert!(
        b.eval("return !!document.querySelector('#devices .this-device:not([hidden])')")
            .await
            == json!(true)
    );

    // "Log out everywhere" ends this page's session too.
    b.click("#logout-all").await;
    b.view("login").await;
    b.text("#notice", "Every device is logged out").await;
    assert!(b.foreign_loads().await.is_empty(), "{:?}", b.foreign_loads().await);
    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_logs_out_and_only_the_new_password_works() {
    let test = "a_password_change_logs_out_and_only_the_new_password_works";
    let app = spawn_app().await;
    app.register("13800000202", PASSWORD).await;
    let Some(b) = Browser::start(test, DESKTOP).await else {
        return;
    };
    b.open(&app.url("/")).await;

    // A wrong password: the API's message, in the page.
    b.fill("#login-mobile", "13800000202").await;
    b.fill("#login-password", "not the password").await;
    b.click("#login-form button[type=submit]").await;
    b.text("#login-form .error", "wrong mobile number or password").await;
    log_in(&b, "13800000202", PASSWORD).await;

    // A wrong old password is refused in the form, and the login stays.
    let new_password = "a different horse battery staple";
    b.fill("#password-old", "not the password").await;
    b.fill("#password-new", new_password).await;
    b.click("#password-form button[type=submit]").await;
    b.text("#password-form .error", "old password is wrong").await;
    b.view("account").await;

    b.fill("#password-old", PASSWORD).await;
    b.fill("#password-new", new_password).await;
    b.click("#password-form button[type=submit]").await;
    b.view("login").await;
    b.text("#notice", "Password changed").await;

    b.fill("#login-mobile", "13800000202").await;
    b.fill("#login-password", PASSWORD).await;
    b.click("#login-form button[type=submit]").await;
    b.text("#login-form .error", "wrong mobile number or password").await;
    log_in(&b, "13800000202", new_password).await;
    b.close().await;
    app.stop().await;
}

/// An access token that expires while the page is open is renewed once, with the
/// refresh token, though the account view asks two things at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_renewed_while_the_page_is_open() {
    let test = "an_expired_access_token_is_renewed_while_the_page_is_open";
    let app = spawn_app_with(&[("access_ttl", "2"), ("leeway", "0")]).await;
    app.register("13800000207", PASSWORD).await;
    let Some(b) = Browser::start(test, DESKTOP).await else {
        return;
    };
    b.open(&app.url("/")).await;
    log_in(&b, "13800000207", PASSWORD).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let loads = b.loads().await;
    b.click(".view:not([hidden]) .tabs a[data-tab=account]").await;
    b.until(
        &format!("Number(document.body.dataset.loads) > {loads}"),
        "the view reloaded",
    )
    .await;
    b.view("account").await;
    b.text("#profile-mobile", "+8613800000207").await;
    assert_eq!(rows(&b, "#devices").await, 1, "{}", b.state().await);
    let notice = b.eval("return document.querySelector('#notice').textContent").await;
    assert_eq!(notice, json!(""), "no failure shown");
    // The session lives on: logging out still works with the renewed token.
    b.click(".view:not([hidden]) .tabs .logout").await;
    b.view("login").await;
    b.text("#notice", "You are logged out").await;
    b.close().await;
    // One refresh for both requests, and no replay of a rotated-out token (the
    // audit log is written in order: the logout's line comes after).
    let mut events: Vec<String> = Vec::new();
    for _ in 0..100 {
        events = app
            .audit_lines()
            .await
            .iter()
            .map(|l| l["event"].as_str().unwrap_or("").to_owned())
            .collect();
        if events.iter().any(|e| e == "logout") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(events.iter().filter(|e| *e == "refresh").count(), 1, "{events:?}");
    assert!(!events.iter().any(|e| e == "refresh_reused"), "{events:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiting_is_shown_with_its_wait() {
    let test = "rate_limiting_is_shown_with_its_wait";
    let app = spawn_app_with(&[("rate_login_account", "2/900")]).await;
    app.register("13800000203", PASSWORD).await;
    let Some(b) = Browser::start(test, DESKTOP).await else {
        return;
    };
    b.open(&app.url("/")).await;
    b.fill("#login-mobile", "13800000203").await;
    b.fill("#login-password", "not the password").await;
    let mut shown = String::new();
    for _ in 0..3 {
        b.until("!document.querySelector('#login-form button').disabled", "the button")
            .await;
        b.click("#login-form button[type=submit]").await;
        b.until("!document.querySelector('#login-form .error').hidden", "an answer")
            .await;
        shown = b.text("#login-form .error", "").await;
        if shown.contains("Try again in") {
            break;
        }
        b.eval("document.querySelector('#login-form .error').hidden = true")
            .await;
    }
    assert!(
        shown.contains("too many attempts") && shown.contains("Try again in"),
        "{shown}"
    );
    // The wait is the server's Retry-After, and the button waits with it.
    let seconds: u64 = regex::Regex::new(r"Try again in (\d+) s")
        .unwrap()
        .captures(&shown)
        .unwrap()[1]
        .parse()
        .unwrap();
    assert!((1..=900).contains(&seconds), "{seconds}");
    assert_eq!(
        b.eval("return document.querySelector('#login-form button').disabled")
            .await,
        json!(true)
    );
    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_alone_logs_in() {
    let test = "the_keyboard_alone_logs_in";
    let app = spawn_app().await;
    app.register("13800000204", PASSWORD).await;
    let Some(b) = Browser::start(test, PHONE).await else {
        return;
    };
    b.open(&app.url("/")).await;
    // From the top of the page, Tab reaches the mobile field through what comes
    // before it (the skip link, the language switch).
    let mut tabs = 0;
    while b.focused().await != "login-mobile" {
        b.keys("\u{E004}").await; // Tab
        tabs += 1;
        assert!(tabs <= 6, "Tab did not reach the mobile field: {}", b.focused().await);
    }
    b.keys("13800000204").await;
    b.keys("\u{E004}").await;
    assert_eq!(b.focused().await, "login-password");
    b.keys(PASSWORD).await;
    b.keys("\u{E007}").await; // Enter submits the form
    b.view("account").await;
    // The view's heading has the focus, so the keyboard carries on from there.
    assert_eq!(b.eval("return document.activeElement.tagName").await, json!("H1"));
    b.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chinese_page_is_chinese_and_the_switch_keeps_the_login() {
    let test = "the_chinese_page_is_chinese_and_the_switch_keeps_the_login";
    let app = spawn_app().await;
    app.register("13800000205", PASSWORD).await;
    let Some(b) = Browser::start(test, DESKTOP).await else {
        return;
    };
    b.open(&app.url("/?lang=zh")).await;
    b.text("#login-title", "登录").await;
    assert_eq!(b.eval("return document.documentElement.lang").await, json!("zh-CN"));
    // The API's messages come in the page's language too.
    b.fill("#login-mobile", "13800000205").await;
    b.fill("#login-password", "not the password").await;
    b.click("#login-form button[type=submit]").await;
    b.text("#login-form .error", "手机号或密码错误").await;

    // Switched to English while logged in: the words change, the login stays.
    log_in(&b, "13800000205", PASSWORD).await;
    b.text("#account-title", "我的账号").await;
    let loads = b.loads().await;
    b.click(".langs a[data-lang=en]").await;
    b.text("#account-title", "Your account").await;
    // The view was loaded again with the same login, and the API now answers in English.
    b.until(
        &format!("Number(document.body.dataset.loads) > {loads}"),
        "the view reloaded",
    )
    .await;
    b.text("#profile-mobile", "+8613800000205").await;
    b.fill("#password-old", "not the password").await;
    b.fill("#password-new", "a different horse battery staple").await;
    b.click("#password-form button[type=submit]").await;
    b.text("#password-form .error", "old password is wrong").await;
    b.text("#devices .this-device:not([hidden])", "This device").await;
    b.view("account").await;
    assert_eq!(b.eval("return document.documentElement.lang").await, json!("en"));
    b.click(".langs a[data-lang=zh]").await;
    b.text("#account-title", "我的账号").await;
    b.close().await;
    app.stop().await;
}

/// nginx-rtmp's question for a publish of `name` with `key`: the status Passport answers.
async fn publish_answer(app: &TestApp, name: &str, key: &str) -> u16 {
    let body = format!("app=live&addr=127.0.0.1&clientid=1&call=publish&name={name}&type=live&key={key}");
    app.client
        .post(app.url("/hooks/nginx-rtmp"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamer_creates_a_stream_sees_its_key_once_rotates_and_deletes_it() {
    let test = "a_streamer_creates_a_stream_sees_its_key_once_rotates_and_deletes_it";
    let app = spawn_app_with(&[("max_sessions", "2"), ("publish_url", "rtmp://live.example.com/live")]).await;
    app.register("13800000206", PASSWORD).await;
    let out = run_command(&app.dir, &["user", "role", "add", "13800000206", "streamer"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let Some(b) = Browser::start(test, DESKTOP).await else {
        return;
    };
    b.open(&app.url("/")).await;
    log_in(&b, "13800000206", PASSWORD).await;
    b.click(".view:not([hidden]) .tabs a[data-tab=streams]").await;
    b.view("streams").await;
    b.loaded().await;
    b.text("#streams-none", "No streams").await;

    b.fill("#stream-name", "evening-show").await;
    b.click("#stream-form button[type=submit]").await;
    b.text("#key-title", "evening-show").await;
    let key = b.value("#key-value").await;
    assert!(key.starts_with("sk_"), "{key}");
    assert_eq!(b.value("#key-server").await, "rtmp://live.example.com/live");
    assert_eq!(
        publish_answer(&app, "evening-show", &key).await,
        200,
        "the key shown is the stream's"
    );
    assert_eq!(rows(&b, "#streams").await, 1);

    // Shown once: "done" takes it off the page, and nothing shows it again.
    b.click("#key-done").await;
    b.until("document.querySelector('#key-panel').hidden", "the key hidden")
        .await;
    b.click(".view:not([hidden]) .tabs a[data-tab=account]").await;
    b.view("account").await;
    b.click(".view:not([hidden]) .tabs a[data-tab=streams]").await;
    b.view("streams").await;
    b.loaded().await;
    assert_eq!(rows(&b, "#streams").await, 1);
    // Nowhere on the page any more: not in a field, not in the text.
    let shown = b
        .eval(
            "return document.body.innerText + ' ' + Array.from(document.querySelectorAll('input')) \
               .map((i) => i.value).join(' ')",
        )
        .await;
    assert!(!shown.as_str().unwrap().contains(&key), "the key is still on the page");
    assert_eq!(b.value("#key-value").await, "");

    // A new key: shown once; the old one is dead at once.
    b.click("#streams .rotate").await;
    b.until("!document.querySelector('#key-panel').hidden", "the new key")
        .await;
    let rotated = b.value("#key-value").await;
    assert!(rotated.starts_with("sk_") && rotated != key);
    assert_eq!(publish_answer(&app, "evening-show", &key).await, 403);
    assert_eq!(publish_answer(&app, "evening-show", &rotated).await, 200);

    // Who may watch.
    b.find("#streams select").await.select_by_value("public").await.unwrap();
    b.text("#notice", "saved").await;
    let token = app.login("13800000206", PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = app
        .send_auth(reqwest::Method::GET, "/passport/streams", &token, None)
        .await;
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["data"]["streams"][0]["access"], "public");

    // Delete asks first; then the stream and its key are gone.
    b.click("#streams .delete").await;
    b.text("#streams .confirm-text", "evening-show").await;
    b.click("#streams .confirm-yes").await;
    b.text("#streams-none", "No streams").await;
    b.until(
        "document.querySelector('#key-panel').hidden",
        "the key hidden with its stream",
    )
    .await;
    assert_eq!(publish_answer(&app, "evening-show", &rotated).await, 403);
    b.close().await;
    app.stop().await;
}

/// Every view at desktop and phone width: axe-core finds no serious or critical
/// problem, nothing comes from another origin, and the README's screenshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_is_accessible_self_contained_and_photographed() {
    let test = "every_view_is_accessible_self_contained_and_photographed";
    let app = spawn_app_with(&[("max_sessions", "3"), ("publish_url", "rtmp://live.example.com/live")]).await;
    app.register("13800138000", PASSWORD).await;
    let out = run_command(&app.dir, &["user", "role", "add", "13800138000", "streamer"], "").await;
    assert!(out.status.success());
    let token = app.login("13800138000", PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (name, access) in [("music-night", "public"), ("studio", "login")] {
        let r = app
            .post_auth(
                "/passport/streams",
                &token,
                Some(&json!({"name": name, "access": access})),
            )
            .await;
        assert_ok(r, 201).await;
    }
    let mut problems = Vec::new();
    for (size, width) in [(DESKTOP, "desktop"), (PHONE, "phone")] {
        let Some(b) = Browser::start(test, size).await else {
            return;
        };
        for lang in ["en", "zh"] {
            b.open(&app.url(&format!("/?lang={lang}"))).await;
            let mut check =
                |view: String, found: Vec<String>| problems.extend(found.into_iter().map(|p| format!("{view}: {p}")));
            let shot = |view: &str| format!("{view}-{lang}-{width}");

            b.view("login").await;
            check(shot("login"), b.accessibility_problems().await);
            b.screenshot(&shot("login")).await;

            b.click("a[href='#/signup']").await;
            b.view("signup").await;
            check(shot("signup"), b.accessibility_problems().await);
            b.screenshot(&shot("signup")).await;

            // An error shown in a form.
            b.click("#signup-form button[type=submit]").await;
            b.until("!document.querySelector('#signup-form .error').hidden", "the error")
                .await;
            check(shot("signup-error"), b.accessibility_problems().await);

            b.click("a[href='#/login']").await;
            log_in(&b, "13800138000", PASSWORD).await;
            b.until("document.querySelectorAll('#devices > li').length >= 2", "two devices")
                .await;
            b.eval("window.scrollTo(0, 0)").await;
            check(shot("account"), b.accessibility_problems().await);
            b.screenshot(&shot("account")).await;

            b.click(".view:not([hidden]) .tabs a[data-tab=streams]").await;
            b.view("streams").await;
            b.until("document.querySelectorAll('#streams > li').length === 2", "the streams")
                .await;
            b.click("#streams > li:first-child .rotate").await;
            b.until("!document.querySelector('#key-panel').hidden", "the key").await;
            b.eval("window.scrollTo(0, 0)").await;
            check(shot("streams"), b.accessibility_problems().await);
            b.screenshot(&shot("streams")).await;
            b.click("#streams > li:first-child .delete").await;
            check(shot("streams-confirm"), b.accessibility_problems().await);
            b.click("#streams > li:first-child .confirm-no").await;

            let foreign = b.foreign_loads().await;
            assert!(foreign.is_empty(), "{lang} {width}: loaded from elsewhere: {foreign:?}");
            b.click(".view:not([hidden]) .tabs .logout").await;
            b.view("login").await;
        }
        b.close().await;
    }
    assert!(problems.is_empty(), "axe-core found:\n{}", problems.join("\n"));

    // The detector itself: an image from elsewhere is seen (and refused by the policy).
    let Some(b) = Browser::start(test, DESKTOP).await else {
        return;
    };
    b.open(&app.url("/")).await;
    b.eval("const probe = document.createElement('img'); probe.alt = ''; probe.src = 'http://192.0.2.1/x.png'; document.body.append(probe);")
        .await;
    b.until("window.cspViolations.length > 0", "the policy to refuse the image")
        .await;
    let seen = b.foreign_loads().await;
    assert!(seen.iter().any(|u| u.starts_with("http://192.0.2.1/")), "{seen:?}");
    assert!(seen.iter().any(|u| u.starts_with("CSP: img-src")), "{seen:?}");
    b.close().await;
    app.stop().await;
}
