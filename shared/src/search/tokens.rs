//! Matching rules of the search index: text is normalized (Unicode NFKC,
//! then lowercased: full-width forms, ligatures and case fold together),
//! split into tokens at every character that is not a letter or a digit,
//! and matched token by token. Accents stay (`é` is not `e`); scripts
//! written without spaces (Chinese, Japanese, Thai) are not segmented: a run
//! of their characters is one token.

use unicode_normalization::UnicodeNormalization;

/// A token's longest indexed prefix, and the longest query term (characters).
pub const MAX_TERM_CHARS: usize = 20;

/// The tokens of `text`, normalized, in order of first appearance, each once.
/// A token longer than [`MAX_TERM_CHARS`] is cut there (in index and query alike).
pub fn tokens(text: &str) -> Vec<String> {
    let normalized: String = text.nfkc().collect::<String>().to_lowercase();
    let mut out: Vec<String> = Vec::new();
    for raw in normalized.split(|c: char| !c.is_alphanumeric()) {
        if raw.is_empty() {
            continue;
        }
        let token: String = raw.chars().take(MAX_TERM_CHARS).collect();
        if !out.contains(&token) {
            out.push(token);
        }
    }
    out
}

/// Every prefix of `token` (1 character up to the whole token): what a
/// name is indexed under, so a query term matches the start of a word.
pub fn prefixes(token: &str) -> Vec<String> {
    token.char_indices().map(|(i, c)| token[..i + c.len_utf8()].to_owned()).collect()
}

/// Whether every term is a whole token of `text`.
pub fn has_all_tokens(text: &str, terms: &[String]) -> bool {
    let found = tokens(text);
    terms.iter().all(|t| found.contains(t))
}

/// Whether every term starts a token of `text`.
pub fn has_all_prefixes(text: &str, terms: &[String]) -> bool {
    let found = tokens(text);
    terms.iter().all(|t| found.iter().any(|token| token.starts_with(t.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_normalized_and_split_at_non_alphanumerics() {
        assert_eq!(tokens("Hello, WORLD! hello…"), ["hello", "world"]);
        assert_eq!(tokens("Ｒｕｓｔ ﬁle Straße"), ["rust", "file", "straße"]);
        assert_eq!(tokens("café cafe"), ["café", "cafe"], "accents stay");
        assert_eq!(tokens("Ünïcode"), tokens("U\u{308}ni\u{308}code"), "composed and decomposed agree");
        assert_eq!(tokens("order#42 a-b_c"), ["order", "42", "a", "b", "c"]);
        assert_eq!(tokens("会議は明日"), ["会議は明日"], "no segmentation");
        assert!(tokens(" ,.;-- ").is_empty());
        assert_eq!(tokens(&"x".repeat(50)), ["x".repeat(MAX_TERM_CHARS)]);
    }

    #[test]
    fn prefixes_and_matches() {
        assert_eq!(prefixes("adé"), ["a", "ad", "adé"]);
        let terms = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_all_tokens("Lunch at noon?", &terms(&["noon", "lunch"])));
        assert!(!has_all_tokens("Lunch at noon?", &terms(&["noo"])));
        assert!(has_all_prefixes("Ada Lovelace", &terms(&["lov", "a"])));
        assert!(!has_all_prefixes("Ada Lovelace", &terms(&["ove"])));
    }
}
