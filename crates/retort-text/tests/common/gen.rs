//! Seeded generator of realistic-looking instructions, shared by the tests and the
//! novelty benchmark (included with `#[path]`): Self-Instruct-style sentences built from
//! task verbs, objects, topics and modifiers, so word frequencies resemble a real pool
//! (many "the"/"a"/"of", a long tail of topic words).

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const OPENERS: &[&str] = &[
    "Write",
    "Explain",
    "Describe",
    "List",
    "Give",
    "Generate",
    "Create",
    "Summarize",
    "Classify",
    "Rewrite",
    "Translate",
    "Compare",
    "Suggest",
    "Find",
    "Identify",
    "Design",
    "Outline",
    "Analyze",
    "Evaluate",
    "Convert",
    "Calculate",
    "Propose",
    "Draft",
    "Compose",
    "Brainstorm",
    "Predict",
    "Recommend",
    "Plan",
    "Edit",
    "Paraphrase",
    "Tell me",
    "Can you",
    "Please",
    "How do I",
    "What is",
    "Why does",
];
const OBJECTS: &[&str] = &[
    "a short story",
    "a poem",
    "an essay",
    "a list of tips",
    "three reasons",
    "five ideas",
    "a summary",
    "a tweet",
    "an email",
    "a cover letter",
    "a product description",
    "a recipe",
    "a dialogue",
    "a haiku",
    "a step-by-step guide",
    "a slogan",
    "a persuasive paragraph",
    "a job posting",
    "a review",
    "a limerick",
    "a joke",
    "a headline",
    "an outline",
    "a speech",
    "a lesson plan",
    "a quiz",
    "a function",
    "a SQL query",
    "a regular expression",
    "a study schedule",
    "ten questions",
    "the main differences",
    "the pros and cons",
    "an analogy",
    "a metaphor",
];
const PREPS: &[&str] = &[
    "about",
    "on",
    "for",
    "explaining",
    "describing",
    "comparing",
    "related to",
    "that explains",
    "that describes",
    "for beginners about",
    "for children about",
    "in the style of Shakespeare about",
    "using simple words about",
];
const TOPICS: &[&str] = &[
    "climate change",
    "the water cycle",
    "photosynthesis",
    "machine learning",
    "the French Revolution",
    "black holes",
    "healthy eating",
    "time management",
    "remote work",
    "renewable energy",
    "the stock market",
    "ancient Rome",
    "volcanoes",
    "the immune system",
    "cryptocurrency",
    "social media",
    "electric cars",
    "the solar system",
    "meditation",
    "coffee",
    "the ocean",
    "friendship",
    "leadership",
    "public speaking",
    "a rainy day",
    "a lost dog",
    "a trip to Paris",
    "space travel",
    "artificial intelligence",
    "recycling",
    "the Great Wall of China",
    "quantum computing",
    "a job interview",
    "learning a new language",
    "the human brain",
    "democracy",
    "supply and demand",
    "inflation",
    "vaccines",
    "the internet",
    "honeybees",
    "chess",
    "the Olympic Games",
    "sleep",
    "gardening",
    "a haunted house",
    "a robot chef",
    "sorting algorithms",
    "binary search",
    "prime numbers",
    "the Pythagorean theorem",
    "customer service",
    "a birthday party",
    "the first day of school",
    "mountain hiking",
    "global trade",
    "urban planning",
    "the printing press",
    "jazz music",
    "dinosaurs",
    "a smartphone app",
    "online privacy",
    "team building",
    "a small bakery",
    "the Renaissance",
    "earthquakes",
    "wind turbines",
    "the moon landing",
    "tea",
];
const TAILS: &[&str] = &[
    "",
    "",
    "",
    ".",
    ".",
    "?",
    " in 100 words.",
    " in three sentences.",
    " for a high school student.",
    " using bullet points.",
    " with examples.",
    " and explain your reasoning.",
    " in a formal tone.",
    " in a humorous way.",
    " for a blog post.",
    " without using technical jargon.",
    " in under 50 words.",
];
const EXTRA: &[&str] = &[
    "fast",
    "new",
    "old",
    "big",
    "small",
    "modern",
    "local",
    "simple",
    "complex",
    "important",
    "common",
    "rare",
    "green",
    "future",
    "daily",
    "global",
    "personal",
];

/// Seeded generator of English instructions.
pub struct InstructionGen {
    rng: ChaCha8Rng,
}

impl InstructionGen {
    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Self {
        InstructionGen {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn pick<'a>(&mut self, xs: &'a [&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    /// One new instruction.
    pub fn instruction(&mut self) -> String {
        let mut s = format!(
            "{} {} {} {}",
            self.pick(OPENERS),
            self.pick(OBJECTS),
            self.pick(PREPS),
            self.pick(TOPICS)
        );
        if self.rng.random_bool(0.4) {
            s = format!("{s} and {} {}", self.pick(EXTRA), self.pick(TOPICS));
        }
        s.push_str(self.pick(TAILS));
        s
    }

    /// A light paraphrase of `s`: one or two words replaced, inserted or dropped.
    pub fn paraphrase(&mut self, s: &str) -> String {
        let mut w: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        for _ in 0..self.rng.random_range(1..=2) {
            let op = self.rng.random_range(0..3);
            if op == 0 && !w.is_empty() {
                let i = self.rng.random_range(0..w.len());
                w[i] = self.pick(EXTRA).to_string();
            } else if op == 1 {
                let i = self.rng.random_range(0..=w.len());
                w.insert(i, self.pick(EXTRA).to_string());
            } else if w.len() > 1 {
                let i = self.rng.random_range(0..w.len());
                w.remove(i);
            }
        }
        w.join(" ")
    }

    /// A pool of `n` instructions.
    pub fn pool(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.instruction()).collect()
    }

    /// Candidates: a mix of fresh instructions and paraphrases of pool items, like the
    /// output of a generator that often repeats itself.
    pub fn candidates(&mut self, pool: &[String], n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                if !pool.is_empty() && self.rng.random_bool(0.5) {
                    let i = self.rng.random_range(0..pool.len());
                    self.paraphrase(&pool[i])
                } else {
                    self.instruction()
                }
            })
            .collect()
    }

    /// Random index below `n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }
}

const ZH_VERBS: &[&str] = &[
    "写", "解释", "描述", "列出", "总结", "翻译", "比较", "推荐", "设计", "分析", "生成", "改写",
];
const ZH_OBJECTS: &[&str] = &[
    "一首诗",
    "一篇短文",
    "三个建议",
    "五个理由",
    "一封邮件",
    "一个故事",
    "一段对话",
    "一个标题",
    "一份计划",
    "主要区别",
    "优点和缺点",
];
const ZH_TOPICS: &[&str] = &[
    "气候变化",
    "人工智能",
    "健康饮食",
    "时间管理",
    "长城",
    "春节",
    "太阳系",
    "光合作用",
    "远程办公",
    "电动汽车",
    "中国历史",
    "数学学习",
    "环境保护",
    "城市交通",
    "茶文化",
    "睡眠质量",
    "团队合作",
    "网络安全",
    "植物生长",
    "古代诗歌",
];

/// Seeded generator of Chinese instructions.
pub fn zh_instruction(rng: &mut ChaCha8Rng) -> String {
    let p = |rng: &mut ChaCha8Rng, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_string();
    format!(
        "请{}关于{}的{}。",
        p(rng, ZH_VERBS),
        p(rng, ZH_TOPICS),
        p(rng, ZH_OBJECTS)
    )
}
