//! The language of `msg`: Chinese when `Accept-Language` prefers it, else English.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// Picks the supported language the client ranks highest (RFC 9110 §12.5.4
    /// quality values); `fallback` when it names neither or sends no header.
    pub fn negotiate(header: Option<&str>, fallback: Lang) -> Lang {
        let Some(header) = header else { return fallback };
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match Lang::from_code(primary) {
                Some(lang) => lang,
                None if primary == "*" => fallback,
                None => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(fallback, |(_, l)| l)
    }

    /// The language a short code names (`en`, `zh`: a language tag's first part,
    /// the pages' `?lang=` and cookie).
    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The short code of this language (`from_code`'s inverse).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The language tag a page declares (`<html lang>`): Chinese as written in
    /// mainland China, in simplified characters.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The text of a success envelope.
    pub fn ok(self) -> &'static str {
        match self {
            Lang::En => "ok",
            Lang::Zh => "成功",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lang::{self, *};

    #[test]
    fn negotiates_by_quality() {
        assert_eq!(Lang::negotiate(None, En), En);
        assert_eq!(Lang::negotiate(Some("zh-CN,zh;q=0.9,en;q=0.8"), En), Zh);
        assert_eq!(Lang::negotiate(Some("en-US,zh;q=0.5"), Zh), En);
        assert_eq!(Lang::negotiate(Some("fr, de;q=0.9"), Zh), Zh);
        assert_eq!(Lang::negotiate(Some("zh;q=0, en;q=0.1"), Zh), En);
        assert_eq!(Lang::negotiate(Some("ZH-tw"), En), Zh);
    }

    #[test]
    fn codes_name_their_language() {
        for lang in [En, Zh] {
            assert_eq!(Lang::from_code(lang.code()), Some(lang));
        }
        assert_eq!(Lang::from_code("fr"), None);
    }
}
