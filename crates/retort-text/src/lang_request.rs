//! Whether an instruction asks for a translation or an answer in a named language, so
//! that a reply in another language than the prompt is what was asked for, not a
//! mismatch (see [`crate::heuristics::lang_mismatch`]).
//!
//! The rule, deliberately small (it only has to excuse, never to accuse):
//! 1. the prompt contains a translation word: `translat…`, `tradu…` (es/pt/fr/it),
//!    `übersetz…`, `vertaal`, `перев…` (ru: переведи, перевод), `翻译`/`翻譯`/`翻訳`,
//!    `译成`/`译为`, `訳して`; or
//! 2. it names a language after a word that asks for it: "in/into/to/using French",
//!    "en francés", "em inglês", "en anglais", "auf Englisch", "ins Englische",
//!    "на английском", "用英文"/"以英语"/"成中文", "英語で"/"英語に".
//!
//! Matching runs on the [`normalize`]d text (lower case, full-width folded). A prompt
//! that merely mentions a language ("Compare Chinese and Japanese food") asks for
//! nothing. `перев…` also matches Russian "convert" (переведи в граммы): the rule then
//! excuses a reply it did not need to, which only means no `lang_mismatch` is flagged.

use crate::normalize::normalize;

/// Stems that mark a translation request (rule 1), in normalised form.
const TRANSLATION_STEMS: &[&str] = &[
    "translat", // translate, translation, translating
    "tradu",    // traduce, traducir, traduza, tradução, traduis, traduire, traduci
    "übersetz", // übersetze, übersetzung
    "vertaal",  // Dutch
    "перев",    // переведи, перевод, перевести
    "翻译",
    "翻譯",
    "翻訳",
    "译成",
    "译为",
    "訳して",
];

/// Words that ask for a language, each with the language names that may follow it
/// (rule 2, spaced scripts): `"<word> <name>"` must occur, at word starts.
const SPACED: &[(&[&str], &[&str])] = &[
    (
        &["in", "into", "to", "using"],
        &[
            "english",
            "chinese",
            "mandarin",
            "cantonese",
            "spanish",
            "portuguese",
            "french",
            "german",
            "japanese",
            "russian",
            "italian",
            "dutch",
            "korean",
            "arabic",
        ],
    ),
    (
        &["en", "al", "a", "em", "para", "ao"],
        &[
            "inglés",
            "ingles",
            "inglês",
            "chino",
            "chinês",
            "español",
            "espanhol",
            "francés",
            "francês",
            "alemán",
            "alemão",
            "japonés",
            "japonês",
            "portugués",
            "português",
            "ruso",
            "russo",
        ],
    ),
    (
        &["en"],
        &[
            "anglais",
            "chinois",
            "espagnol",
            "portugais",
            "français",
            "allemand",
            "japonais",
            "russe",
        ],
    ),
    (
        &["auf", "ins", "in"],
        &[
            "englisch",
            "chinesisch",
            "spanisch",
            "portugiesisch",
            "französisch",
            "deutsch",
            "japanisch",
            "russisch",
        ],
    ),
    (
        &["на"],
        &[
            "английск",
            "китайск",
            "испанск",
            "португальск",
            "французск",
            "немецк",
            "японск",
            "русск",
        ],
    ),
];

/// Chinese language names (rule 2): asked for when preceded by 用, 以 or 成.
const ZH_NAMES: &[&str] = &[
    "英文",
    "英语",
    "中文",
    "汉语",
    "普通话",
    "日语",
    "日文",
    "法语",
    "德语",
    "西班牙语",
    "葡萄牙语",
    "俄语",
    "韩语",
];

/// Japanese language names (rule 2): asked for when followed by で or に.
const JA_NAMES: &[&str] = &[
    "英語",
    "中国語",
    "日本語",
    "スペイン語",
    "ポルトガル語",
    "フランス語",
    "ドイツ語",
    "ロシア語",
    "韓国語",
];

/// Whether `prompt` asks for a translation or for an answer in a named language (the
/// rule in the module docs).
pub fn asks_for_language(prompt: &str) -> bool {
    let n = normalize(prompt);
    if TRANSLATION_STEMS.iter().any(|s| n.contains(s)) {
        return true;
    }
    let words: Vec<&str> = n
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for pair in words.windows(2) {
        for (asks, names) in SPACED {
            if asks.contains(&pair[0]) && names.iter().any(|name| pair[1].starts_with(name)) {
                return true;
            }
        }
    }
    let zh = ZH_NAMES.iter().any(|name| {
        ["用", "以", "成"]
            .iter()
            .any(|p| n.contains(&format!("{p}{name}")))
    });
    let ja = JA_NAMES.iter().any(|name| {
        ["で", "に"]
            .iter()
            .any(|s| n.contains(&format!("{name}{s}")))
    });
    zh || ja
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_found() {
        for p in [
            "Translate the following sentence into French: I like tea.",
            "Write a short poem in Spanish about the sea.",
            "How do you say 'good morning' in Japanese?",
            "Answer using German, please.",
            "Traduce al inglés: me gusta el té.",
            "Responde en inglés: ¿qué hora es?",
            "Escreva em inglês uma frase sobre o mar.",
            "Réponds en anglais, s'il te plaît.",
            "Schreib die Antwort auf Englisch.",
            "Übersetze ins Englische: Guten Morgen.",
            "Ответь на английском языке.",
            "把这句话翻译成英文：今天天气很好。",
            "请用英文回答：什么是光合作用？",
            "次の文を英語に訳してください。",
            "英語で答えてください。",
        ] {
            assert!(asks_for_language(p), "{p}");
        }
    }

    #[test]
    fn mentions_are_not_requests() {
        for p in [
            "Give three tips for staying healthy.",
            "Compare Chinese and Japanese cuisine.",
            "Who was the first French president of the Fifth Republic?",
            "Generate a random sentence.",
            "解释为什么天空是蓝色的。",
            "用Python写一个快速排序函数",
            "Enumera tres ventajas de la energía solar.",
            "Erkläre den Wasserkreislauf.",
            "日本語の文法について教えてください。",
        ] {
            assert!(!asks_for_language(p), "{p}");
        }
    }
}
