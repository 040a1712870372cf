//! The one HTML document of the pages: every view (log in, sign up, account,
//! streams) is a section of it, shown by the script for the URL's fragment
//! (`#/login`, `#/signup`, `#/account`, `#/streams`). One document, because the
//! login lives only in the page's memory (docs/src/security.md, "The web pages"): moving
//! between views must not reload it.
//!
//! Every text is a `<span data-t=key>` from the catalogue, so the script can switch
//! language in place. No inline script or style: the Content-Security-Policy
//! (`mod.rs`) allows neither.

use maud::{html, Markup, DOCTYPE};

use super::text::Catalogue;
use crate::i18n::Lang;

/// What the document needs to know beyond its language.
pub struct Page<'a> {
    pub lang: Lang,
    pub password_min: usize,
    /// The RTMP URL shown to streamers; `None`: the script derives it from the host.
    pub publish_url: Option<&'a str>,
}

pub fn document(page: &Page) -> Markup {
    let c = Catalogue::of(page.lang);
    let t = |key: &str| html! { span data-t=(key) { (c.get(key)) } };
    let (html_lang, code) = (page.lang.tag(), page.lang.code());
    let min = page.password_min.to_string();
    let password_hint = html! {
        span data-t="signup.password_hint" data-min=(min) { (c.fill("signup.password_hint", &[("min", &min)])) }
    };
    html! {
        (DOCTYPE)
        html lang=(html_lang) data-lang=(code) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title data-t="title" { (c.get("title")) }
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/app.css";
                script type="module" src="/assets/app.js" {}
            }
            body data-publish-url=[page.publish_url] {
                a.skip href="#main" { (t("skip")) }
                header.top {
                    span.brand { "Passport" }
                    nav.langs aria-label=(c.get("lang.label")) data-t-aria-label="lang.label" {
                        a href="?lang=en" lang="en" hreflang="en" data-lang="en" aria-current=[(page.lang == Lang::En).then_some("true")] { "English" }
                        a href="?lang=zh" lang="zh-CN" hreflang="zh-CN" data-lang="zh" aria-current=[(page.lang == Lang::Zh).then_some("true")] { "中文" }
                    }
                }
                main #main tabindex="-1" {
                    div #notice .notice role="status" aria-live="polite" {}

                    section #view-login .view data-view="login" aria-labelledby="login-title" {
                        h1 #login-title { (t("login.title")) }
                        form #login-form .card method="post" novalidate {
                            (field("login-mobile", t("field.mobile"), html! {
                                input #login-mobile name="mobile" type="tel" autocomplete="username" inputmode="tel" required;
                            }))
                            (field("login-password", t("field.password"), html! {
                                input #login-password name="password" type="password" autocomplete="current-password" required;
                            }))
                            (field("login-device", t("field.device"), html! {
                                input #login-device name="device" type="text" maxlength="128" autocomplete="off"
                                    placeholder=(c.get("field.device_placeholder")) data-t-placeholder="field.device_placeholder";
                            }))
                            p .error role="alert" hidden {}
                            button type="submit" disabled { (t("login.submit")) }
                        }
                        p { (t("login.to_signup")) " " a href="#/signup" { (t("login.signup_link")) } }
                    }

                    section #view-signup .view data-view="signup" aria-labelledby="signup-title" hidden {
                        h1 #signup-title { (t("signup.title")) }
                        form #signup-form .card method="post" novalidate {
                            (field("signup-mobile", t("field.mobile"), html! {
                                input #signup-mobile name="mobile" type="tel" autocomplete="username" inputmode="tel"
                                    required aria-describedby="signup-mobile-hint";
                                p #signup-mobile-hint .hint { (t("field.mobile_hint")) }
                            }))
                            (field("signup-password", t("field.password"), html! {
                                input #signup-password name="password" type="password" autocomplete="new-password"
                                    required minlength=(page.password_min) aria-describedby="signup-password-hint";
                                p #signup-password-hint .hint { (password_hint) }
                            }))
                            p .error role="alert" hidden {}
                            button type="submit" disabled { (t("signup.submit")) }
                        }
                        p { (t("signup.to_login")) " " a href="#/login" { (t("signup.login_link")) } }
                    }

                    section #view-account .view data-view="account" aria-labelledby="account-title" hidden {
                        (account_nav(&t, c))
                        h1 #account-title { (t("account.title")) }
                        section .card aria-labelledby="profile-title" {
                            h2 #profile-title { (t("profile.title")) }
                            dl #profile .facts {
                                dt { (t("profile.mobile")) } dd #profile-mobile {}
                                dt { (t("profile.user_id")) } dd #profile-user-id {}
                                dt { (t("profile.roles")) } dd #profile-roles {}
                                dt { (t("profile.created_at")) } dd #profile-created-at {}
                                dt { (t("profile.last_login")) } dd #profile-last-login {}
                            }
                        }
                        section .card aria-labelledby="devices-title" {
                            h2 #devices-title { (t("devices.title")) }
                            p { (t("devices.intro")) }
                            ul #devices .rows {}
                            button #logout-all type="button" .secondary { (t("devices.logout_all")) }
                        }
                        section .card aria-labelledby="password-title" {
                            h2 #password-title { (t("password.title")) }
                            form #password-form method="post" novalidate {
                                (field("password-old", t("field.old_password"), html! {
                                    input #password-old name="old_password" type="password" autocomplete="current-password" required;
                                }))
                                (field("password-new", t("field.new_password"), html! {
                                    input #password-new name="new_password" type="password" autocomplete="new-password"
                                        required minlength=(page.password_min) aria-describedby="password-new-hint";
                                    p #password-new-hint .hint { (password_hint) " " (t("password.note")) }
                                }))
                                p .error role="alert" hidden {}
                                button type="submit" disabled { (t("password.submit")) }
                            }
                        }
                    }

                    section #view-streams .view data-view="streams" aria-labelledby="streams-title" hidden {
                        (account_nav(&t, c))
                        h1 #streams-title { (t("streams.title")) }
                        section #key-panel .card .key aria-labelledby="key-title" hidden {
                            h2 #key-title {}
                            p .warn { (t("key.once")) }
                            (field("key-server", t("key.server"), html! {
                                div .copyable {
                                    input #key-server type="text" readonly;
                                    button type="button" data-copy="key-server" aria-describedby="key-server-label" { (t("key.copy")) }
                                }
                            }))
                            (field("key-value", t("key.value"), html! {
                                div .copyable {
                                    input #key-value type="text" readonly autocomplete="off" spellcheck="false";
                                    button type="button" data-copy="key-value" aria-describedby="key-value-label" { (t("key.copy")) }
                                }
                            }))
                            button #key-done type="button" { (t("key.done")) }
                        }
                        section .card aria-labelledby="stream-create-title" {
                            h2 #stream-create-title { (t("streams.create_title")) }
                            form #stream-form method="post" novalidate {
                                (field("stream-name", t("field.stream_name"), html! {
                                    input #stream-name name="name" type="text" required maxlength="64" autocomplete="off"
                                        autocapitalize="none" spellcheck="false" pattern="[a-z0-9][a-z0-9_\\-]{0,63}"
                                        aria-describedby="stream-name-hint";
                                    p #stream-name-hint .hint { (t("field.stream_name_hint")) }
                                }))
                                (field("stream-access", t("field.access"), access_select("stream-access", c)))
                                p .error role="alert" hidden {}
                                button type="submit" disabled { (t("streams.create")) }
                            }
                        }
                        section .card aria-labelledby="stream-list-title" {
                            h2 #stream-list-title { (t("streams.list_title")) }
                            p #streams-none hidden { (t("streams.none")) }
                            ul #streams .rows {}
                        }
                    }
                }
                // Rows the script clones for each device and stream: markup stays here.
                template #device-row {
                    li .row {
                        div .what { strong .device-name {} " " span .badge .this-device hidden { (t("devices.this")) } }
                        div .meta { span .device-ip {} " · " span .device-since {} }
                        button type="button" .secondary .end-device { (t("devices.logout_one")) }
                    }
                }
                template #stream-row {
                    li .row {
                        div .what { strong .stream-name {} }
                        div .controls {
                            label .stream-access-label { (t("field.access")) }
                            (access_select("", c))
                            button type="button" .secondary .rotate { (t("streams.rotate")) }
                            button type="button" .danger .delete { (t("streams.delete")) }
                        }
                        div .confirm role="group" hidden {
                            p .confirm-text {}
                            button type="button" .danger .confirm-yes { (t("streams.confirm_yes")) }
                            button type="button" .secondary .confirm-no { (t("streams.cancel")) }
                        }
                    }
                }
            }
        }
    }
}

/// A labelled field: the label's `for` names the control's id; the label is
/// `<id>-label`, for controls that refer to it.
fn field(id: &str, label: Markup, control: Markup) -> Markup {
    html! {
        div .field {
            label #(format!("{id}-label")) for=(id) { (label) }
            (control)
        }
    }
}

fn account_nav(t: &impl Fn(&str) -> Markup, c: &Catalogue) -> Markup {
    html! {
        nav .tabs aria-label=(c.get("account.nav_label")) data-t-aria-label="account.nav_label" {
            a href="#/account" data-tab="account" { (t("account.nav")) }
            a href="#/streams" data-tab="streams" .streams-tab hidden { (t("streams.nav")) }
            button type="button" .logout .secondary { (t("account.logout")) }
        }
    }
}

/// Options hold text only (no span), so the key sits on the option itself.
fn access_select(id: &str, c: &Catalogue) -> Markup {
    html! {
        select id=[(!id.is_empty()).then_some(id)] name="access" {
            option value="login" data-t="access.login" { (c.get("access.login")) }
            option value="public" data-t="access.public" { (c.get("access.public")) }
        }
    }
}
