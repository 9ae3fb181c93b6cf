//! Cheap heuristic columns for scoring and elimination: lengths, language and
//! prompt/response language agreement, repetition, refusals and leaked prompt-template
//! markers. [`annotate`] is the one place that turns a prompt and a response into these
//! columns (the `annotate` and `score` steps both call it).

use std::collections::{BTreeMap, HashSet};

use crate::lang::{identify, LangId};
use crate::lang_request::asks_for_language;
use crate::normalize::normalize;
use crate::script::units;

/// The language code of `text`: [`crate::lang::identify`]'s ISO 639-1 code, or
/// `"und"` when it cannot tell (too few letters, no supported language fits). Callers
/// that need the confidence use [`crate::lang::identify`].
pub fn detect_language(text: &str) -> &'static str {
    identify(text).code
}

/// The `lang_mismatch` rule: `Some(true)` when the response is in another language
/// than the prompt and the prompt did not ask for a translation or a named language
/// ([`asks_for_language`]); `Some(false)` when they agree or it did ask; `None` when
/// either side is not confidently identified ([`LangId::is_confident`]), since a guess
/// must not flag or clear a record.
pub fn lang_mismatch(prompt_text: &str, prompt: LangId, response: LangId) -> Option<bool> {
    if !prompt.is_confident() || !response.is_confident() {
        return None;
    }
    Some(prompt.code != response.code && !asks_for_language(prompt_text))
}

/// Phrases that open a refusal or a model disclaimer, English and Chinese, in
/// [`normalize`]d form (lower case, full-width punctuation folded to ASCII).
const REFUSAL_PHRASES: &[&str] = &[
    "i'm sorry, but",
    "i am sorry, but",
    "i'm sorry, i can",
    "sorry, but i can",
    "sorry, i can't",
    "i apologize, but",
    "i cannot fulfill",
    "i can't fulfill",
    "i cannot help with",
    "i can't help with",
    "i cannot assist",
    "i can't assist",
    "i cannot provide",
    "i can't provide",
    "i cannot comply",
    "i can't comply",
    "i cannot create",
    "i can't create",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "i won't be able to",
    "i must decline",
    "i do not have the ability",
    "i don't have the ability",
    "as an ai language model",
    "as an ai model",
    "as a language model",
    "as an ai assistant, i cannot",
    "抱歉,我无法",
    "抱歉,我不能",
    "对不起,我无法",
    "对不起,我不能",
    "很抱歉,我无法",
    "很抱歉,我不能",
    "我无法提供",
    "我不能提供",
    "我无法帮助",
    "我不能帮助",
    "我无法完成",
    "无法满足您的要求",
    "作为一个人工智能",
    "作为人工智能",
    "作为一个ai",
    "作为一个语言模型",
    "作为ai语言模型",
];

/// How much of the start of a reply is searched for refusal phrases: refusals open the
/// reply, while the same words deep inside a long answer are usually quoted content.
const REFUSAL_WINDOW_CHARS: usize = 300;

/// Whether `text` reads as a refusal or an "as an AI" disclaimer: one of a list of
/// English and Chinese phrases occurs in its first 300 characters (after
/// normalisation, with typographic apostrophes made plain).
pub fn is_refusal(text: &str) -> bool {
    let head: String = text.chars().take(REFUSAL_WINDOW_CHARS).collect();
    let n = normalize(&head.replace(['\u{2019}', '\u{2018}'], "'"));
    REFUSAL_PHRASES.iter().any(|p| n.contains(p))
}

/// Prompt-template and chat-format markers that should never appear in generated text.
pub const LEAK_MARKERS: &[&str] = &[
    "[Human]",
    "[AI]",
    "[|Human|]",
    "[|AI|]",
    "### Instruction",
    "### Input",
    "### Response",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "{{",
    "{%",
];

/// Number of occurrences of [`LEAK_MARKERS`] in `text` (case-sensitive, as templates
/// write them).
pub fn leaked_markers(text: &str) -> usize {
    LEAK_MARKERS.iter().map(|m| text.matches(m).count()).sum()
}

/// Fraction of n-grams that repeat an earlier n-gram of the same text: 0 for text with no
/// repetition, approaching 1 for degenerate loops. Units as in
/// [`crate::minhash`]: words (n = 3) for spaced text, characters (n = 5) for CJK text.
/// 0 when the text is shorter than n units.
pub fn repetition_ratio(text: &str) -> f64 {
    let (u, cjk) = units(text);
    let n = if !u.is_empty() && cjk >= u.len() - cjk {
        5
    } else {
        3
    };
    if u.len() < n {
        return 0.0;
    }
    let total = u.len() - n + 1;
    let distinct: HashSet<&[String]> = u.windows(n).collect();
    (total - distinct.len()) as f64 / total as f64
}

/// Fraction of characters that are not ASCII (0 for empty text).
pub fn non_ascii_ratio(text: &str) -> f64 {
    let (mut all, mut non) = (0usize, 0usize);
    for c in text.chars() {
        all += 1;
        non += usize::from(!c.is_ascii());
    }
    if all == 0 {
        0.0
    } else {
        non as f64 / all as f64
    }
}

fn side(out: &mut BTreeMap<String, f64>, prefix: &str, text: &str) {
    let (u, _) = units(text);
    out.insert(format!("{prefix}_len_chars"), text.chars().count() as f64);
    out.insert(format!("{prefix}_len_words"), u.len() as f64);
    out.insert(format!("{prefix}_repetition"), repetition_ratio(text));
    out.insert(format!("{prefix}_non_ascii_ratio"), non_ascii_ratio(text));
    out.insert(
        format!("{prefix}_leaked_markers"),
        leaked_markers(text) as f64,
    );
}

/// Heuristic columns for a prompt and, when given, its response. Keys (each prefixed
/// `prompt_` or `response_`): `len_chars` (Unicode scalar values), `len_words` (words,
/// with each CJK character counted as one), `repetition` ([`repetition_ratio`]),
/// `non_ascii_ratio`, `leaked_markers` ([`leaked_markers`]); plus `response_is_refusal`
/// (0 or 1, [`is_refusal`]) when a response is given.
pub fn features(prompt: &str, response: Option<&str>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    side(&mut out, "prompt", prompt);
    if let Some(r) = response {
        side(&mut out, "response", r);
        out.insert(
            "response_is_refusal".to_string(),
            if is_refusal(r) { 1.0 } else { 0.0 },
        );
    }
    out
}

/// The heuristic columns of one record, split by the record map they belong in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotation {
    /// Numeric columns (`scores.*`).
    pub scores: BTreeMap<String, f64>,
    /// Text columns (`labels.*`).
    pub labels: BTreeMap<String, String>,
}

/// Every heuristic column for a prompt and, when given, its response:
/// - scores: [`features`]; `prompt_language_confidence`; with a response also
///   `response_language_confidence` and, when both languages are confidently identified,
///   `lang_mismatch` (0/1, [`lang_mismatch`]; absent otherwise, never a default);
/// - labels: `language` (of the prompt) and, with a response, `response_language`
///   (ISO 639-1 codes or `und`, see [`crate::lang`]).
pub fn annotate(prompt: &str, response: Option<&str>) -> Annotation {
    let mut a = Annotation {
        scores: features(prompt, response),
        ..Default::default()
    };
    let p = identify(prompt);
    a.labels.insert("language".into(), p.code.into());
    a.scores
        .insert("prompt_language_confidence".into(), p.confidence);
    if let Some(r) = response {
        let rl = identify(r);
        a.labels.insert("response_language".into(), rl.code.into());
        a.scores
            .insert("response_language_confidence".into(), rl.confidence);
        if let Some(m) = lang_mismatch(prompt, p, rl) {
            a.scores
                .insert("lang_mismatch".into(), if m { 1.0 } else { 0.0 });
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_phrases_are_in_normalized_form() {
        // Matching compares against normalised text, so an entry in any other form
        // could never match.
        for p in REFUSAL_PHRASES {
            assert_eq!(normalize(p), *p);
        }
    }

    #[test]
    fn languages_are_identified_not_guessed_from_the_script() {
        assert_eq!(
            detect_language("Give three tips for staying healthy."),
            "en"
        );
        // Latin script is not English (issue #16: every one of these read as `en`).
        assert_eq!(detect_language("Eres un perro."), "es");
        assert_eq!(detect_language("Escreva uma frase sobre o mar."), "pt");
        assert_eq!(detect_language("解释为什么天空是蓝色的。"), "zh");
        assert_eq!(detect_language("空が青いのはなぜですか。"), "ja");
        assert_eq!(detect_language("Почему небо голубое?"), "ru");
        assert_eq!(detect_language("12345 !!!"), "und");
        assert_eq!(detect_language("用Python写一个快速排序函数"), "zh");
    }

    #[test]
    fn mismatch_rule() {
        let en = "Generate a random sentence.";
        let cols = annotate(en, Some("Eres un perro muy simpático y leal."));
        assert_eq!(cols.labels["language"], "en");
        assert_eq!(cols.labels["response_language"], "es");
        assert_eq!(cols.scores["lang_mismatch"], 1.0);
        let same = annotate(
            en,
            Some("The quiet river carried the paper boat downstream."),
        );
        assert_eq!(same.scores["lang_mismatch"], 0.0);
        let asked = annotate(
            "Translate into Spanish: the dog is friendly and loyal.",
            Some("El perro es simpático y leal."),
        );
        assert_eq!(asked.scores["lang_mismatch"], 0.0);
        let zh = annotate(
            "请用英文回答：什么是光合作用？",
            Some("Photosynthesis is how plants turn light, water and carbon dioxide into sugar."),
        );
        assert_eq!(zh.scores["lang_mismatch"], 0.0);
        // A response with no language (only numbers) gets no verdict at all.
        let unsure = annotate("What is 6 times 7?", Some("42"));
        assert_eq!(unsure.labels["response_language"], "und");
        assert_eq!(unsure.scores["response_language_confidence"], 0.0);
        assert!(!unsure.scores.contains_key("lang_mismatch"));
        let none = annotate(en, None);
        assert!(!none.scores.contains_key("lang_mismatch"));
        assert!(!none.labels.contains_key("response_language"));
        assert!(none.scores["prompt_language_confidence"] >= crate::lang::CONFIDENT);
    }

    #[test]
    fn refusals() {
        assert!(is_refusal("I'm sorry, but I can't help with that request."));
        assert!(is_refusal("I’m sorry, but I cannot do that."));
        assert!(is_refusal(
            "As an AI language model, I do not have opinions."
        ));
        assert!(is_refusal("抱歉，我无法提供这方面的信息。"));
        assert!(is_refusal("作为一个人工智能，我没有个人感受。"));
        assert!(!is_refusal(
            "Sure! Here are three tips for staying healthy."
        ));
        assert!(!is_refusal("当然可以，以下是三个建议。"));
        let late = format!("{} I'm sorry, but", "word ".repeat(100));
        assert!(!is_refusal(&late), "phrases deep in an answer are content");
    }

    #[test]
    fn markers_and_repetition() {
        assert_eq!(leaked_markers("[Human] hi [AI] hello [Human] bye"), 3);
        assert_eq!(leaked_markers("### Instruction:\nDo it"), 1);
        assert_eq!(leaked_markers("<|im_start|>user\nhi<|im_end|>"), 2);
        assert_eq!(leaked_markers("a clean answer"), 0);
        assert_eq!(repetition_ratio("one two three four five six"), 0.0);
        let looped = "the cat sat ".repeat(20);
        assert!(repetition_ratio(&looped) > 0.9);
        assert!(repetition_ratio(&"好的好的".repeat(10)) > 0.8);
    }

    #[test]
    fn feature_columns() {
        let f = features("写一首诗", Some("I'm sorry, but I can't."));
        assert_eq!(f["prompt_len_chars"], 4.0);
        assert_eq!(f["prompt_len_words"], 4.0);
        assert_eq!(f["prompt_non_ascii_ratio"], 1.0);
        assert_eq!(f["response_is_refusal"], 1.0);
        assert_eq!(f["response_len_words"], 7.0);
        assert!(!features("hi there", None).contains_key("response_len_chars"));
    }
}
