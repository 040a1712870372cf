//! The pages' words, in each language: one JSON catalogue per language under `web/i18n/`.
//!
//! The same catalogue renders the page on the server (first paint in the right
//! language, no script needed to read it) and is served to the page's script, which
//! uses it for what it writes itself and to switch language in place (a reload would
//! end the login, which lives only in the page's memory). The API's own `msg` texts
//! come from the error type and are not repeated here.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::i18n::Lang;

pub const EN_JSON: &str = include_str!("../../../web/i18n/en.json");
pub const ZH_JSON: &str = include_str!("../../../web/i18n/zh.json");

pub struct Catalogue(HashMap<String, String>);

static EN: LazyLock<Catalogue> = LazyLock::new(|| Catalogue::parse(EN_JSON));
static ZH: LazyLock<Catalogue> = LazyLock::new(|| Catalogue::parse(ZH_JSON));

impl Catalogue {
    pub fn of(lang: Lang) -> &'static Catalogue {
        match lang {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        }
    }

    /// The catalogues are part of the binary and checked by the tests, so a broken
    /// one is a build defect, not a runtime condition.
    fn parse(json: &str) -> Catalogue {
        Catalogue(serde_json::from_str(json).expect("web/i18n catalogue is a JSON object of strings"))
    }

    /// The text of `key`; a missing key shows as `⟦key⟧`, which the tests look for.
    pub fn get(&self, key: &str) -> String {
        self.0.get(key).cloned().unwrap_or_else(|| format!("⟦{key}⟧"))
    }

    /// The text of `key` with `{name}` placeholders filled.
    pub fn fill(&self, key: &str, args: &[(&str, &str)]) -> String {
        args.iter().fold(self.get(key), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn both_languages_have_the_same_keys_and_no_empty_text() {
        let en: BTreeSet<&str> = Catalogue::of(Lang::En).keys().collect();
        let zh: BTreeSet<&str> = Catalogue::of(Lang::Zh).keys().collect();
        assert_eq!(en, zh, "web/i18n/en.json and zh.json must have the same keys");
        for lang in [Lang::En, Lang::Zh] {
            for key in &en {
                assert!(
                    !Catalogue::of(lang).get(key).trim().is_empty(),
                    "{key} is empty in {lang:?}"
                );
            }
        }
    }

    #[test]
    fn every_key_the_script_uses_is_in_the_catalogue() {
        let script = include_str!("../../../web/app.js");
        let en = Catalogue::of(Lang::En);
        let used = regex::Regex::new(r#"\bt\("([a-z_.]+)""#).unwrap();
        let mut n = 0;
        for key in used.captures_iter(script) {
            n += 1;
            assert!(
                !en.get(&key[1]).starts_with('⟦'),
                "app.js uses {} which no catalogue has",
                &key[1]
            );
        }
        assert!(n > 10, "the pattern should find the script's keys, found {n}");
    }

    #[test]
    fn placeholders_are_filled() {
        let en = Catalogue::of(Lang::En);
        assert_eq!(en.fill("error.retry_after", &[("seconds", "30")]), "Try again in 30 s.");
        assert_eq!(en.get("no.such.key"), "⟦no.such.key⟧");
    }
}
