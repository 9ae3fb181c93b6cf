//! Step kinds by name: the one table ([`KINDS`]) that building, hints and the docs
//! check read. Compile calls [`build`] for every step of a pipeline file and collects
//! every problem at once. The vocabulary kinds build with lives in [`crate::spec`], so
//! kinds never import this module (which imports them all).

pub use crate::spec::{parse_options, BuildCtx, Built, Estimate, StepSpec};

/// One step kind: what building, hints, `--help` and the docs check all read.
pub struct Kind {
    /// The `kind = "…"` name.
    pub name: &'static str,
    /// Parses and checks the options; errors are plain messages (the caller adds the
    /// file, step id and line).
    pub build: fn(&StepSpec, &BuildCtx) -> Result<Built, Vec<String>>,
    /// One line: what the step does.
    pub about: &'static str,
    /// How records reach it: `source`, `streaming`, `whole table`.
    pub shape: &'static str,
}

/// Every step kind this build knows, in the order the docs list them.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "load",
        build: crate::load::build,
        about: "read JSONL / JSON / CSV / Parquet files into records",
        shape: "source",
    },
    Kind {
        name: "filter",
        build: crate::filter::build,
        about: "keep the records a predicate over their columns accepts",
        shape: "streaming",
    },
    Kind {
        name: "sample",
        build: crate::sample::build_sample,
        about: "a seeded random sample (`n` rows or a `fraction`)",
        shape: "whole table (n) or streaming (fraction)",
    },
    Kind {
        name: "limit",
        build: crate::sample::build_limit,
        about: "the first `n` records",
        shape: "streaming",
    },
    Kind {
        name: "export",
        build: crate::export::build,
        about: "write Parquet / JSONL in a trainer's format",
        shape: "whole table",
    },
    Kind {
        name: "embed",
        build: crate::embed::build,
        about: "vectors from the embedder",
        shape: "streaming",
    },
    Kind {
        name: "dedup",
        build: crate::dedup::build,
        about: "remove exact, near (MinHash) or semantic duplicates",
        shape: "whole table",
    },
    Kind {
        name: "cluster",
        build: crate::cluster::build,
        about: "k-means over embeddings, with teacher-written labels",
        shape: "whole table",
    },
    Kind {
        name: "report",
        build: crate::report::build,
        about: "the self-contained HTML cluster report",
        shape: "whole table",
    },
    Kind {
        name: "novelty_filter",
        build: crate::novelty_filter::build,
        about: "Self-Instruct's ROUGE-L novelty filter against a growing pool",
        shape: "whole table",
    },
    Kind {
        name: "score",
        build: crate::score::build,
        about: "quality / difficulty scores by an LLM judge with a rubric",
        shape: "streaming",
    },
    Kind {
        name: "annotate",
        build: crate::annotate::build,
        about: "teacher-free columns: languages, lang_mismatch, lengths, repetition, refusal",
        shape: "streaming",
    },
    Kind {
        name: "judge",
        build: crate::judge::build,
        about: "pointwise or position-swapped pairwise judging of candidates",
        shape: "streaming",
    },
    Kind {
        name: "pair",
        build: crate::pair::build,
        about: "chosen / rejected pairs from judged candidates",
        shape: "streaming",
    },
    Kind {
        name: "tiers",
        build: crate::tiers::build,
        about: "quality tiers from score quantiles",
        shape: "whole table",
    },
    Kind {
        name: "self_instruct",
        build: crate::self_instruct::build,
        about: "grow tasks from seeds (Alpaca or classic Self-Instruct)",
        shape: "whole table",
    },
    Kind {
        name: "self_chat",
        build: crate::self_chat::build,
        about: "multi-turn chats (Baize self-chat or a dual-role user simulator)",
        shape: "streaming",
    },
    Kind {
        name: "evol_instruct",
        build: crate::evol_instruct::build,
        about: "Evol-Instruct in-depth / in-breadth rewrites with an eliminator",
        shape: "streaming",
    },
    Kind {
        name: "respond",
        build: crate::respond::build,
        about: "answers from one or more teachers, k samples each",
        shape: "streaming",
    },
    Kind {
        name: "generate",
        build: crate::custom::build,
        about: "your own prompt template over any fields; text or JSON-schema replies into fields",
        shape: "streaming",
    },
];

/// The known kind closest to a mistyped one, when it is close enough to be meant.
pub fn did_you_mean(kind: &str) -> Option<&'static str> {
    let k = kind.to_ascii_lowercase().replace('-', "_");
    let names: Vec<&'static str> = KINDS.iter().map(|x| x.name).collect();
    crate::spec::closest(&k, &names)
}

/// Build one step from its spec. Errors are plain messages; the caller adds the file,
/// step id and line.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    match KINDS.iter().find(|k| k.name == spec.kind) {
        Some(k) => (k.build)(spec, ctx),
        None => {
            let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
            let hint = match did_you_mean(&spec.kind) {
                Some(m) => format!("did you mean `{m}`? Known kinds are {}", names.join(", ")),
                None => format!("known kinds are {}", names.join(", ")),
            };
            Err(vec![format!(
                "unknown step kind `{}`; hint: {hint}",
                spec.kind
            )])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_miss_gets_the_kind_it_meant() {
        assert_eq!(did_you_mean("dedupe"), Some("dedup"));
        assert_eq!(did_you_mean("self-instruct"), Some("self_instruct"));
        assert_eq!(did_you_mean("respnd"), Some("respond"));
        assert_eq!(did_you_mean("Export"), Some("export"));
        assert_eq!(did_you_mean("clusters"), Some("cluster"));
        assert_eq!(did_you_mean("xyzzy"), None);
    }

    /// Every kind in the table has its section in docs/pipelines.md (`### 5.N \`kind\``).
    #[test]
    fn every_kind_has_a_docs_section() {
        let docs = include_str!("../../../docs/pipelines.md");
        for k in KINDS {
            let heading = format!(" `{}`\n", k.name);
            assert!(
                docs.lines()
                    .any(|l| l.starts_with("### 5.") && format!("{l}\n").ends_with(&heading)),
                "docs/pipelines.md has no `### 5.N `{}`` section",
                k.name
            );
        }
    }

    #[test]
    fn an_unknown_kind_lists_every_kind() {
        let spec = StepSpec {
            id: "x".into(),
            kind: "dedupe".into(),
            after: vec![],
            options: toml::Table::new(),
        };
        let Err(e) = build(&spec, &BuildCtx::default()) else {
            panic!("built an unknown kind")
        };
        assert!(e[0].contains("did you mean `dedup`?"), "{e:?}");
        for k in KINDS {
            assert!(e[0].contains(k.name), "{} missing from {e:?}", k.name);
        }
    }
}
