//! The reference pages under `docs/src/reference/` are made from the code, not kept
//! by hand: the HTTP API from the served `/openapi.json`, the error codes from the
//! error type, the command line from clap, the metrics from their registry. Each test renders its page and fails
//! when the committed one differs; `PASSPORT_UPDATE_DOCS=1 cargo test --test api
//! reference` writes them instead.

use std::collections::BTreeMap;
use std::path::PathBuf;

use passport::error::ApiError;
use passport::i18n::Lang;
use serde_json::Value;

use crate::helpers::*;

/// Compares `rendered` with the committed page `name`, or writes it when asked to.
fn current(name: &str, rendered: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs/src/reference")
        .join(name);
    if std::env::var_os("PASSPORT_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/src/reference/{name} is out of date with the code; \
         run PASSPORT_UPDATE_DOCS=1 cargo test --test api reference and commit it"
    );
}

fn header(title: &str, source: &str) -> String {
    format!(
        "# {title}\n\n<!-- Made from {source} by tests/api/reference.rs: do not edit. \
         PASSPORT_UPDATE_DOCS=1 cargo test --test api reference remakes it. -->\n\n"
    )
}

/// A cell of a Markdown table: one line, no bar, and the text as written (`<kid>`
/// is no HTML tag, `[user@]` no link).
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('[', "\\[")
        .replace(']', "\\]")
}

#[tokio::test]
async fn the_http_api_page_is_made_from_the_served_document() {
    let doc = crate::openapi::served_document(&spawn_app().await).await;
    // Operations by their first tag, each tag's in path order.
    let mut by_tag: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let paths = doc["paths"].as_object().unwrap();
    let mut ordered: Vec<(&String, &Value)> = paths.iter().collect();
    ordered.sort_by(|a, b| a.0.cmp(b.0));
    for (path, item) in ordered {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            let Some(op) = item.get(method) else { continue };
            let tag = op["tags"][0].as_str().unwrap_or("other").to_owned();
            by_tag.entry(tag).or_default().push(operation(&doc, path, method, op));
        }
    }
    let mut page = header("HTTP API", "the server's /openapi.json");
    page.push_str(
        "Every answer is the envelope `{code, msg, data}` (error answers add `error`, \
         the code of the [error codes](errors.md)). Bodies are shown by their fields: \
         `{a, b?}` is an object with `a` and, optionally, `b`; `[…]` a list. The document \
         itself is served at `GET /openapi.json` (OpenAPI 3.1), with every field's type \
         and limits. Besides the operations below, Passport serves the [web \
         pages](../guides/web-pages.md) at `GET /` (their assets under `/assets/`), its \
         [metrics](metrics.md) at `GET /metrics`, and the document itself.\n",
    );
    for (tag, ops) in by_tag {
        page.push_str(&format!("\n## {tag}\n"));
        for op in ops {
            page.push_str(&op);
        }
    }
    current("http-api.md", &page);
}

/// A schema as a reader needs it: an object as `{a, b?}` (`?`: not required), a list
/// as `[…]`, references followed; nothing for a plain value.
fn shape(doc: &Value, schema: &Value) -> String {
    if schema.get("$ref").is_some() {
        return shape(doc, resolved(doc, schema));
    }
    for alternatives in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = schema[alternatives].as_array() {
            let shapes: Vec<String> = list.iter().map(|s| shape(doc, s)).filter(|s| !s.is_empty()).collect();
            return shapes.join(" | ");
        }
    }
    if let Some(items) = schema.get("items") {
        let inner = shape(doc, items);
        return if inner.is_empty() {
            "[…]".to_owned()
        } else {
            format!("[{inner}]")
        };
    }
    let Some(properties) = schema["properties"].as_object() else {
        return String::new();
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let fields: Vec<String> = properties
        .iter()
        .map(|(name, field)| {
            let optional = if required.contains(&name.as_str()) { "" } else { "?" };
            match shape(doc, field) {
                inner if inner.is_empty() => format!("{name}{optional}"),
                inner => format!("{name}{optional}: {inner}"),
            }
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// `schema`, or the component it refers to.
fn resolved<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

/// The shape of an answer's `data`, for an answer in the envelope (nothing for an
/// answer with no JSON body).
fn data_shape(doc: &Value, response: &Value) -> String {
    let envelope = resolved(doc, &response["content"]["application/json"]["schema"]);
    match envelope["properties"].get("data") {
        Some(data) => shape(doc, data),
        None => shape(doc, envelope),
    }
}

/// One operation: its summary, what it needs, and what it answers.
fn operation(doc: &Value, path: &str, method: &str, op: &Value) -> String {
    let mut out = format!("\n### `{} {path}`\n\n", method.to_uppercase());
    let text = [&op["summary"], &op["description"]]
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    if !text.is_empty() {
        out.push_str(&format!("{}\n\n", text.trim()));
    }
    let security: Vec<&str> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_object()?.keys().next().map(String::as_str))
        .collect();
    let auth = match security.as_slice() {
        [] => "none".to_owned(),
        schemes => schemes
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" or "),
    };
    out.push_str(&format!("- Authentication: {auth}\n"));
    if let Some(body) = op["requestBody"]["content"].as_object() {
        for (media_type, content) in body {
            match shape(doc, &content["schema"]) {
                fields if fields.is_empty() => out.push_str(&format!("- Request body: {media_type}\n")),
                fields => out.push_str(&format!("- Request body: `{fields}` ({media_type})\n")),
            }
        }
    }
    for p in op["parameters"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "- Parameter `{}` ({}): {}\n",
            p["name"].as_str().unwrap_or(""),
            p["in"].as_str().unwrap_or(""),
            cell(p["description"].as_str().unwrap_or(""))
        ));
    }
    out.push_str("\n| status | meaning |\n|---|---|\n");
    let mut responses: Vec<(&String, &Value)> = op["responses"].as_object().into_iter().flatten().collect();
    responses.sort_by(|a, b| a.0.cmp(b.0));
    for (status, r) in responses {
        let data = match data_shape(doc, r) {
            fields if fields.is_empty() || !status.starts_with('2') => String::new(),
            // A bar inside a table's cell, even in code, must be escaped.
            fields => format!("; `data`: `{}`", fields.replace('|', "\\|")),
        };
        out.push_str(&format!(
            "| {status} | {}{data} |\n",
            cell(r["description"].as_str().unwrap_or(""))
        ));
    }
    out
}

#[test]
fn the_error_codes_page_is_made_from_the_error_type() {
    let mut rows: BTreeMap<(u16, &str), String> = BTreeMap::new();
    for e in ApiError::one_of_each() {
        rows.entry((e.status().as_u16(), e.code())).or_insert_with(|| {
            format!(
                "| `{}` | {} | {} | {} |\n",
                e.code(),
                e.status().as_u16(),
                cell(&e.message(Lang::En)),
                cell(&e.message(Lang::Zh))
            )
        });
    }
    let mut page = header("Error codes", "the error type (src/error.rs)");
    page.push_str(
        "An error answer carries its code in `error`, the HTTP status in `code`, and a \
         message in `msg`, in Chinese when `Accept-Language` prefers it. Clients decide \
         on `error`, never on `msg`.\n\n| error | status | msg (en) | msg (zh) |\n|---|---|---|---|\n",
    );
    rows.values().for_each(|row| page.push_str(row));
    current("errors.md", &page);
}

#[test]
fn the_command_line_page_is_made_from_clap() {
    let mut cmd = <passport::cli::Cli as clap::CommandFactory>::command().term_width(100);
    cmd.build();
    let mut page = header("Command line", "the command line's definition (src/cli.rs)");
    page.push_str(
        "Every setting is also a flag of every command, and an environment variable; \
         the settings are listed once, under `passport`.\n",
    );
    help_of(&mut cmd, "passport", true, &mut page);
    current("command-line.md", &page);
}

/// `cmd`'s help under a heading, then its subcommands'; the settings (global
/// flags) only at the top, and no environment variable's value, whatever is set
/// where the test runs.
fn help_of(cmd: &mut clap::Command, name: &str, top: bool, page: &mut String) {
    let shown = std::mem::take(cmd).mut_args(|a| {
        let global = a.is_global_set();
        a.hide_env_values(true).hide(global && !top)
    });
    *cmd = shown;
    page.push_str(&format!("\n## `{name}`\n\n```text\n{}```\n", cmd.render_long_help()));
    // clap's own `help` subcommand repeats what each page already shows.
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .filter(|s| s != "help")
        .collect();
    for sub in names {
        let mut sub_cmd = cmd.find_subcommand_mut(&sub).unwrap().clone();
        help_of(&mut sub_cmd, &format!("{name} {sub}"), false, page);
    }
}

#[test]
fn the_metrics_page_is_made_from_their_registry() {
    // name → (type, unit, help, label names): the `# TYPE`, `# UNIT` and `# HELP`
    // lines, and the labels of the one series the catalogue holds of each.
    let mut metrics: BTreeMap<String, [String; 4]> = BTreeMap::new();
    let catalogue = passport::observe::catalogue();
    for line in catalogue.lines() {
        let Some(rest) = line.strip_prefix("# ") else { continue };
        let Some((kind, rest)) = rest.split_once(' ') else {
            continue;
        };
        let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
        let field = match kind {
            "TYPE" => 0,
            "UNIT" => 1,
            "HELP" => 2,
            _ => continue,
        };
        metrics.entry(name.to_owned()).or_default()[field] = value.to_owned();
    }
    assert!(metrics.len() >= 9, "the catalogue names too few metrics:\n{catalogue}");
    for (name, fields) in metrics.iter_mut() {
        let series = catalogue.lines().find(|l| {
            l.strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with('_') || rest.starts_with(' '))
        });
        let labels: Vec<String> = series
            .and_then(|l| Some(l.split_once('{')?.1.split_once('}')?.0))
            .map(|inner| {
                inner
                    .split(',')
                    .filter_map(|kv| kv.split_once('=').map(|(k, _)| format!("`{k}`")))
                    .filter(|k| k != "`le`")
                    .collect()
            })
            .unwrap_or_default();
        fields[3] = labels.join(", ");
    }
    let mut page = header("Metrics", "the metrics' registry (src/observe.rs)");
    page.push_str(
        "Served at `GET /metrics` in the OpenMetrics text format, to the addresses \
         `PASSPORT_METRICS_ALLOW` names. A counter's samples end in `_total`, a \
         histogram's in `_bucket`, `_sum` and `_count`.\n\n\
         | metric | type | unit | labels | meaning |\n|---|---|---|---|---|\n",
    );
    for (name, [kind, unit, help, labels]) in metrics {
        page.push_str(&format!(
            "| `{name}` | {kind} | {unit} | {labels} | {} |\n",
            cell(&help)
        ));
    }
    current("metrics.md", &page);
}

#[test]
fn the_settings_page_is_made_from_their_declaration() {
    let defaults = passport::Config::from_sources(&passport::config::Sources::default()).unwrap();
    let mut page = header("Settings", "the settings' declaration (src/config/mod.rs)");
    page.push_str(
        "Nothing needs setting. Every setting has a key of the optional TOML file that \
         `--config` / `PASSPORT_CONFIG` names, an environment variable and a flag of \
         every command. Precedence is flag > environment > file > default. A bad value, \
         or a key the file should not have, stops startup with a message naming the \
         setting (exit status 2).\n\n\
         ```toml\n\
         # passport.toml\n\
         max_sessions = 3\n\
         trusted_proxies = [\"10.0.0.0/8\"]\n\
         rate_login_account = \"5/60\"\n\
         ```\n\n\
         When no secret is given, one is generated (32 random bytes, written as 64 hex \
         characters) into `<data dir>/secret.key` with mode 0600, and the log says so; \
         several processes must be given the same secret. The values of secrets and of \
         URLs that may carry a password never appear in `--help` or the log.\n\n\
         | name (the TOML key) | environment variable | flag | default | meaning |\n|---|---|---|---|---|\n",
    );
    for s in passport::config::SETTINGS {
        let default = defaults.shown(s.key).unwrap();
        page.push_str(&format!(
            "| `{}` | `{}` | `--{}` | {} | {} |\n",
            s.key,
            s.env(),
            s.flag(),
            // Descriptions (unset, machine-dependent) read as words, values as code.
            if default == "unset" || default.contains(' ') {
                cell(&default)
            } else {
                format!("`{default}`")
            },
            cell(s.help)
        ));
    }
    current("settings.md", &page);
}
