//! The book's examples are run, so that the book cannot drift from the code.
//!
//! Every fenced block of the book (`docs/src/`) and of README.md that holds a shell
//! command or a configuration is one of:
//! - marked `<!-- run -->` on the line before it: a shell block, run by
//!   [`the_shell_examples_run_against_a_live_server`] in one `bash` per page, in
//!   order, against a real `passport serve` on a free port (`localhost:8080` becomes
//!   its address, `cargo run --release --` the binary Cargo built); the output lines
//!   the block shows as `# {…}` comments must come out, in order (`...` or `…`
//!   standing for any text);
//! - TOML, read by the configuration loader ([`every_toml_example_is_read_by_the_loader`]);
//! - an include of `docs/src/snippets/<file>`, which the end-to-end tests run
//!   (`support::book_snippet`);
//! - marked `<!-- not run: <why> -->`: software that is not here (SRS, Traefik…),
//!   production hosts, or a command that does not end.
//!
//! Blocks of output (`json`, `text`) are examples of what comes back, not commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

use crate::support::{self, PassportProcess};

/// How a block says it is checked.
#[derive(Debug, PartialEq)]
enum Mark {
    Run,
    NotRun(String),
    Unmarked,
}

#[derive(Debug)]
struct Block {
    /// The page, from the repository's root, and the block's first line.
    place: String,
    lang: String,
    text: String,
    mark: Mark,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of the book, as (path from the root, text).
fn pages() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![root().join("README.md")];
    walk(&root().join("docs/src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(root()).unwrap().display().to_string();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// The fenced blocks of a page, each with the mark of the HTML comment right before it.
fn blocks(page: &str, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut last_html: Option<String> = None;
    let mut open: Option<(usize, String, Mark)> = None;
    let mut body = String::new();
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            // An HTML block (such as a comment) comes as its start, its lines, its end.
            Event::Start(Tag::HtmlBlock) => {
                last_html = Some(String::new());
                continue;
            }
            Event::Html(html) => {
                last_html = Some(last_html.take().unwrap_or_default() + &html);
                continue;
            }
            Event::End(TagEnd::HtmlBlock) => continue,
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let mark = match last_html.as_deref().map(str::trim) {
                    Some("<!-- run -->") => Mark::Run,
                    Some(c) if c.starts_with("<!-- not run:") => Mark::NotRun(
                        c.trim_start_matches("<!-- not run:")
                            .trim_end_matches("-->")
                            .trim()
                            .to_owned(),
                    ),
                    _ => Mark::Unmarked,
                };
                let lang = info.split([',', ' ']).next().unwrap_or("").to_owned();
                let line = text[..range.start].lines().count() + 1;
                open = Some((line, lang, mark));
                body.clear();
            }
            Event::Text(t) if open.is_some() => body.push_str(&t),
            Event::End(TagEnd::CodeBlock) => {
                if let Some((line, lang, mark)) = open.take() {
                    out.push(Block {
                        place: format!("{page}:{line}"),
                        lang,
                        text: std::mem::take(&mut body),
                        mark,
                    });
                }
            }
            _ => {}
        }
        last_html = None;
    }
    out
}

fn all_blocks() -> Vec<Block> {
    pages().iter().flat_map(|(page, text)| blocks(page, text)).collect()
}

/// `{{#include ../snippets/<file>}}` alone: the file's name.
fn included_snippet(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{#include ")?.strip_suffix("}}")?;
    Some(inner.rsplit('/').next().unwrap_or(inner))
}

#[test]
fn every_example_is_run_or_says_why_not() {
    // The test support's source without whitespace, where rustfmt may break a call.
    let support_source: String = std::fs::read_to_string(root().join("tests/support/mod.rs"))
        .unwrap()
        .split_whitespace()
        .collect();
    let blocks = all_blocks();
    assert!(blocks.len() > 20, "too few blocks found: the parser missed them");
    let mut problems = Vec::new();
    for b in &blocks {
        if let Some(file) = included_snippet(&b.text) {
            let path = root().join("docs/src/snippets").join(file);
            if !path.exists() {
                problems.push(format!("{}: includes {file}, which does not exist", b.place));
            } else if !support_source.contains(&format!("book_snippet(\"{file}\"")) {
                problems.push(format!("{}: includes {file}, which no end-to-end test runs", b.place));
            }
            continue;
        }
        match (&b.mark, b.lang.as_str()) {
            (Mark::Run, "sh") => {}
            (Mark::Run, lang) => problems.push(format!("{}: only sh blocks run, not {lang:?}", b.place)),
            (Mark::NotRun(why), _) if why.len() < 10 => {
                problems.push(format!("{}: `not run` says too little of why", b.place))
            }
            (Mark::NotRun(_), _) => {}
            (Mark::Unmarked, "toml" | "json" | "text") => {}
            (Mark::Unmarked, lang) => problems.push(format!(
                "{}: a {lang:?} block is neither <!-- run --> nor <!-- not run: why -->",
                b.place
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_toml_example_is_read_by_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    let tomls: Vec<Block> = all_blocks().into_iter().filter(|b| b.lang == "toml").collect();
    assert!(!tomls.is_empty(), "the book shows no configuration file");
    for (i, b) in tomls.iter().enumerate() {
        let path = dir.path().join(format!("{i}.toml"));
        std::fs::write(&path, &b.text).unwrap();
        let config = passport::config::Sources::default()
            .with_file(&path)
            .and_then(|s| passport::Config::from_sources(&s));
        if let Err(e) = config {
            panic!("{}: the configuration loader refuses this example: {e}", b.place);
        }
    }
}

/// What a page's `<!-- run -->` blocks run in, before them: `cargo run --release --`
/// is the binary Cargo built for the tests, and each answer of curl ends its line.
const PRELUDE: &str = r#"set -euo pipefail
cargo() {
  if [ "$1 $2 $3" != "run --release --" ]; then echo "the book runs cargo as: cargo $*" >&2; exit 97; fi
  shift 3; "$PASSPORT_BIN" "$@"
}
curl() { command curl "$@"; echo; }
"#;

#[test]
fn the_shell_examples_run_against_a_live_server() {
    let mut ran = 0;
    for (page, text) in pages() {
        let runs: Vec<Block> = blocks(&page, &text)
            .into_iter()
            .filter(|b| b.mark == Mark::Run)
            .collect();
        if runs.is_empty() {
            continue;
        }
        run_page(&page, &runs);
        ran += runs.len();
    }
    assert!(ran >= 3, "only {ran} blocks ran");
}

/// Runs one page's blocks in one shell against a server of its own, and checks the
/// answers they show.
fn run_page(page: &str, runs: &[Block]) {
    let dir = tempfile::tempdir().unwrap();
    let settings = support::settings(dir.path(), &[]);
    let server = PassportProcess::start(crate::helpers::passport_bin(), &settings);
    let script: String = runs.iter().map(|b| b.text.as_str()).collect::<Vec<_>>().join("\n");
    let script = script
        .replace("localhost:8080", &server.addr)
        .replace("127.0.0.1:8080", &server.addr);
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .current_dir(dir.path())
        .env("PASSPORT_BIN", crate::helpers::passport_bin())
        .env_remove("PASSPORT_CONFIG")
        .stdin(Stdio::null());
    // The commands use the server's own stores and secret.
    for (key, value) in &settings {
        cmd.env(passport::config::env_name(key), value);
    }
    let out = cmd.output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{page}: the examples failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let shown: Vec<&str> = runs
        .iter()
        .flat_map(|b| b.text.lines())
        .filter_map(|l| l.trim().strip_prefix("# ").filter(|shown| shown.starts_with('{')))
        .collect();
    let mut lines = stdout.lines();
    for expected in &shown {
        let found = lines.any(|line| matches_shown(expected, line.trim()));
        assert!(
            found,
            "{page}: the book shows {expected}, which did not come out (in order):\n{stdout}"
        );
    }
}

/// Whether `line` is what the book shows, where `...` or `…` stands for any text.
fn matches_shown(shown: &str, line: &str) -> bool {
    let shown = shown.replace('…', "...");
    let parts: Vec<&str> = shown.split("...").collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return line == first;
    }
    if !line.starts_with(first) || !line.ends_with(last) || line.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn the_shown_answers_are_matched_as_written() {
    assert!(matches_shown(r#"{"a":1,...}"#, r#"{"a":1,"b":2}"#));
    assert!(matches_shown(r#"{"t":"...","r":"…"}"#, r#"{"t":"x","r":"y"}"#));
    assert!(!matches_shown(r#"{"a":1,...}"#, r#"{"a":2,"b":2}"#));
    assert!(!matches_shown(r#"{"a":1}"#, r#"{"a":1,"b":2}"#));
    assert!(!matches_shown(r#"{"t":"...","r":"x"}"#, r#"{"t":"x"}"#));
}
