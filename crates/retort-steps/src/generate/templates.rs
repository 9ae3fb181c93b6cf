//! Prompt templates. Built-in templates live in the repo's `templates/` folder and are
//! compiled into the binary, so `retort` works from any directory; a step may point at
//! its own file instead (`template = "my_prompt.jinja"`, relative to the pipeline file).

use std::path::{Path, PathBuf};

use minijinja::Environment;
use serde::Serialize;

/// Built-in templates: (name, source). Add one line per template file.
const BUILTIN: &[(&str, &str)] = &[
    // (name, include_str!("../../../../templates/<name>.jinja")),
    (
        "cluster_label",
        include_str!("../../../../templates/cluster_label.jinja"),
    ),
    (
        "score_quality",
        include_str!("../../../../templates/score_quality.jinja"),
    ),
    (
        "score_difficulty",
        include_str!("../../../../templates/score_difficulty.jinja"),
    ),
    (
        "judge_pointwise",
        include_str!("../../../../templates/judge_pointwise.jinja"),
    ),
    (
        "judge_pairwise",
        include_str!("../../../../templates/judge_pairwise.jinja"),
    ),
    (
        "judge_ultrafeedback_instruction_following",
        include_str!("../../../../templates/judge_ultrafeedback_instruction_following.jinja"),
    ),
    (
        "judge_ultrafeedback_honesty",
        include_str!("../../../../templates/judge_ultrafeedback_honesty.jinja"),
    ),
    (
        "judge_ultrafeedback_truthfulness",
        include_str!("../../../../templates/judge_ultrafeedback_truthfulness.jinja"),
    ),
    (
        "judge_ultrafeedback_helpfulness",
        include_str!("../../../../templates/judge_ultrafeedback_helpfulness.jinja"),
    ),
    (
        "alpaca_generate",
        include_str!("../../../../templates/alpaca_generate.jinja"),
    ),
    (
        "classic_instructions",
        include_str!("../../../../templates/classic_instructions.jinja"),
    ),
    (
        "classic_is_classification",
        include_str!("../../../../templates/classic_is_classification.jinja"),
    ),
    (
        "classic_instances_input_first",
        include_str!("../../../../templates/classic_instances_input_first.jinja"),
    ),
    (
        "classic_instances_output_first",
        include_str!("../../../../templates/classic_instances_output_first.jinja"),
    ),
    (
        "baize_chat",
        include_str!("../../../../templates/baize_chat.jinja"),
    ),
    (
        "dual_user",
        include_str!("../../../../templates/dual_user.jinja"),
    ),
    (
        "dual_assistant_system",
        include_str!("../../../../templates/dual_assistant_system.jinja"),
    ),
    (
        "evol_in_depth",
        include_str!("../../../../templates/evol_in_depth.jinja"),
    ),
    (
        "evol_in_breadth",
        include_str!("../../../../templates/evol_in_breadth.jinja"),
    ),
    (
        "respond_system",
        include_str!("../../../../templates/respond_system.jinja"),
    ),
];

/// Every built-in template as (name, source), for config hashes.
pub fn builtins() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

/// Names of the built-in templates.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// A loaded, syntax-checked template.
#[derive(Clone, Debug)]
pub struct Template {
    /// Built-in name or the file path as given.
    pub name: String,
    source: String,
    /// The file it was read from; `None` for built-in and inline templates.
    path: Option<PathBuf>,
}

impl Template {
    /// Load `spec`: a built-in name (`alpaca_generate`) or a path ending in `.jinja`
    /// (resolved against `base_dir`). The template is parsed now so syntax errors surface
    /// at compile time, with the template name and line.
    pub fn load(spec: &str, base_dir: &Path) -> Result<Template, String> {
        let mut path = None;
        let source = if let Some((_, src)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
            src.to_string()
        } else if spec.ends_with(".jinja") || spec.contains('/') {
            let p: PathBuf = if Path::new(spec).is_absolute() {
                PathBuf::from(spec)
            } else {
                base_dir.join(spec)
            };
            let source = std::fs::read_to_string(&p).map_err(|e| {
                format!(
                    "template file {} cannot be read ({e}); check the path (relative paths start at the pipeline file's folder)",
                    p.display()
                )
            })?;
            path = Some(p);
            source
        } else {
            return Err(format!(
                "unknown template `{spec}`; use a built-in ({}) or a path to a .jinja file",
                builtin_names().join(", ")
            ));
        };
        let t = Template {
            name: spec.to_string(),
            source,
            path,
        };
        t.check()?;
        Ok(t)
    }

    /// A template written inline in the pipeline file (`prompt = "…"`); `name` says
    /// where, for error messages. Parsed now, like [`Template::load`].
    pub fn inline(name: &str, source: &str) -> Result<Template, String> {
        let t = Template {
            name: name.to_string(),
            source: source.to_string(),
            path: None,
        };
        t.check()?;
        Ok(t)
    }

    /// The top-level variables the template reads and does not define itself (`labels`
    /// for `{{ labels.topic }}`), so a step can reject an unknown one at compile time.
    pub fn variables(&self) -> Result<std::collections::BTreeSet<String>, String> {
        let env = self.env().map_err(|e| e.to_string())?;
        let t = env.get_template(&self.name).map_err(|e| e.to_string())?;
        Ok(t.undeclared_variables(false).into_iter().collect())
    }

    /// The file this template came from, when it is not built in (for the config hash).
    pub fn file(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    fn env(&self) -> Result<Environment<'_>, minijinja::Error> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // minijinja 3 moved the whitespace switches into the syntax config.
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        env.add_template(&self.name, &self.source)?;
        Ok(env)
    }

    fn check(&self) -> Result<(), String> {
        self.env().map(|_| ()).map_err(|e| {
            format!(
                "template `{}` has a syntax error at line {}: {}",
                self.name,
                e.line().unwrap_or(0),
                e.detail().unwrap_or(&e.to_string())
            )
        })
    }

    /// Render with the given variables. A missing variable is an error (strict mode), so
    /// a typo in a template never sends a half-empty prompt to a paid endpoint.
    pub fn render<S: Serialize>(&self, vars: S) -> Result<String, String> {
        let env = self.env().map_err(|e| e.to_string())?;
        let t = env.get_template(&self.name).map_err(|e| e.to_string())?;
        t.render(minijinja::value::Serde(vars)).map_err(|e| {
            format!(
                "template `{}` failed to render at line {}: {}",
                self.name,
                e.line().unwrap_or(0),
                e.detail().unwrap_or(&e.to_string())
            )
        })
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_names_template_and_line() {
        let dir = std::env::temp_dir().join(format!("retort-tpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bad.jinja"), "line one\n{% if x %}\nno end").unwrap();
        let e = Template::load("bad.jinja", &dir).unwrap_err();
        assert!(e.contains("bad.jinja") && e.contains("syntax error"), "{e}");
    }

    #[test]
    fn missing_variable_is_an_error() {
        let dir = std::env::temp_dir();
        let p = dir.join(format!("retort-tpl-ok-{}.jinja", std::process::id()));
        std::fs::write(&p, "Hello {{ name }}").unwrap();
        let t = Template::load(p.to_str().unwrap(), &dir).unwrap();
        assert_eq!(
            t.render(serde_json::json!({"name": "x"})).unwrap(),
            "Hello x"
        );
        assert!(t.render(serde_json::json!({})).is_err());
    }
}
