//! The pipeline file: parsing, `--set` overrides and source positions for errors.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found while compiling a pipeline file. Compile collects all of them and
/// reports them together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    /// The pipeline file.
    pub file: PathBuf,
    /// 1-based line, where it is known.
    pub line: Option<usize>,
    /// The step the problem is in, if any.
    pub step: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": ")?;
        if let Some(s) = &self.step {
            write!(f, "step `{s}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// A pipeline file read from disk, with its text kept for line lookups.
#[derive(Clone, Debug)]
pub struct Source {
    /// Path as given.
    pub path: PathBuf,
    /// File text.
    pub text: String,
}

impl Source {
    /// Read a pipeline file.
    pub fn read(path: &Path) -> Result<Source, CompileError> {
        let text = std::fs::read_to_string(path).map_err(|e| CompileError {
            file: path.to_path_buf(),
            line: None,
            step: None,
            message: format!("cannot read the pipeline file: {e}"),
            hint: Some("check the path; pipelines live in `pipelines/` by convention".into()),
        })?;
        Ok(Source {
            path: path.to_path_buf(),
            text,
        })
    }

    /// An error located in this file.
    pub fn error(
        &self,
        line: Option<usize>,
        step: Option<&str>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> CompileError {
        CompileError {
            file: self.path.clone(),
            line,
            step: step.map(str::to_string),
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of_offset(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    /// Line ranges of each `[[step]]` block, in file order: (header line, end line).
    pub fn step_blocks(&self) -> Vec<(usize, usize)> {
        let lines: Vec<&str> = self.text.lines().collect();
        let mut starts = Vec::new();
        let mut tables = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim();
            if t.starts_with('[') {
                tables.push(i);
                if t.starts_with("[[step]]") {
                    starts.push(i);
                }
            }
        }
        starts
            .iter()
            .map(|&s| {
                let end = tables
                    .iter()
                    .copied()
                    .find(|&t| t > s)
                    .unwrap_or(lines.len());
                (s + 1, end)
            })
            .collect()
    }

    /// Line of `key = …` inside the lines `[from, to]` (1-based, inclusive), if present.
    pub fn key_line(&self, key: &str, from: usize, to: usize) -> Option<usize> {
        self.text
            .lines()
            .enumerate()
            .skip(from.saturating_sub(1))
            .take(to + 1 - from.min(to + 1))
            .find(|(_, l)| {
                let t = l.trim_start();
                t.strip_prefix(key)
                    .map(|rest| {
                        let r = rest.trim_start();
                        r.starts_with('=') || (key.starts_with('[') && rest.is_empty())
                    })
                    .unwrap_or(false)
            })
            .map(|(i, _)| i + 1)
    }

    /// Line of a table header such as `[teachers.big]` (a trailing comment is fine).
    pub fn header_line(&self, header: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| {
                l.trim().strip_prefix(header).is_some_and(|rest| {
                    rest.trim().is_empty() || rest.trim_start().starts_with('#')
                })
            })
            .map(|i| i + 1)
    }
}

/// The pipeline-level text keys the dataset card reads: `description` (what the dataset
/// is for) and `license` (a Hub license id such as `apache-2.0`). Both optional; when
/// present each must be a non-empty string.
pub fn check_card_keys(source: &Source, doc: &toml::Table, errors: &mut Vec<CompileError>) {
    for key in ["description", "license"] {
        match doc.get(key) {
            None => {}
            Some(toml::Value::String(s)) if !s.trim().is_empty() => {}
            Some(v) => errors.push(source.error(
                source.key_line(key, 1, usize::MAX / 2),
                None,
                format!("`{key}` must be a non-empty string; got {v}"),
                Some(if key == "license" {
                    "a Hub license id, e.g. license = \"apache-2.0\"; the dataset card declares it"
                } else {
                    "what the dataset is for; the dataset card opens with it"
                }),
            )),
        }
    }
}

/// Apply `--set path.to.key=value` overrides to a parsed pipeline table.
///
/// `step.<id>.<key>` addresses a step by id; other paths address tables directly
/// (`seed=7`, `teachers.big.model=...`). The value is parsed as a TOML value, and taken
/// as a plain string when it does not parse (so `--set teachers.big.model=Qwen/x` works
/// without quotes).
pub fn apply_set(doc: &mut toml::Table, assignment: &str) -> Result<(), String> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| format!("--set `{assignment}`: expected path.to.key=value"))?;
    let path = path.trim();
    let value = parse_value(raw.trim());
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("--set `{assignment}`: empty segment in `{path}`"));
    }
    let (table, key) = if parts[0] == "step" {
        if parts.len() < 3 {
            return Err(format!(
                "--set `{assignment}`: address a step option as step.<id>.<key>"
            ));
        }
        let id = parts[1];
        let steps = doc
            .get_mut("step")
            .and_then(|s| s.as_array_mut())
            .ok_or_else(|| format!("--set `{assignment}`: the pipeline has no steps"))?;
        let step = steps
            .iter_mut()
            .filter_map(|s| s.as_table_mut())
            .find(|t| t.get("id").and_then(|v| v.as_str()) == Some(id))
            .ok_or_else(|| format!("--set `{assignment}`: no step with id `{id}`"))?;
        (
            descend(step, &parts[2..parts.len() - 1], assignment)?,
            parts[parts.len() - 1],
        )
    } else {
        (
            descend(doc, &parts[..parts.len() - 1], assignment)?,
            parts[parts.len() - 1],
        )
    };
    table.insert(key.to_string(), value);
    Ok(())
}

fn descend<'a>(
    mut t: &'a mut toml::Table,
    path: &[&str],
    assignment: &str,
) -> Result<&'a mut toml::Table, String> {
    for p in path {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("--set `{assignment}`: `{p}` is not a table"))?;
    }
    Ok(t)
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_overrides_step_option_and_top_level() {
        let mut doc: toml::Table = r#"
seed = 1
[[step]]
id = "a"
kind = "limit"
n = 3
"#
        .parse()
        .unwrap();
        apply_set(&mut doc, "step.a.n=10").unwrap();
        apply_set(&mut doc, "seed=7").unwrap();
        apply_set(&mut doc, "teachers.big.model=Qwen/Qwen2.5-7B").unwrap();
        assert_eq!(doc["seed"].as_integer(), Some(7));
        assert_eq!(doc["step"][0]["n"].as_integer(), Some(10));
        assert_eq!(
            doc["teachers"]["big"]["model"].as_str(),
            Some("Qwen/Qwen2.5-7B")
        );
        assert!(apply_set(&mut doc, "step.zzz.n=1").is_err());
        assert!(apply_set(&mut doc, "nonsense").is_err());
    }

    #[test]
    fn card_keys_must_be_strings() {
        let s = Source {
            path: "p.toml".into(),
            text: "description = \"d\"\nlicense = 3\n".into(),
        };
        let doc: toml::Table = s.text.parse().unwrap();
        let mut errors = Vec::new();
        check_card_keys(&s, &doc, &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(2));
        assert!(errors[0]
            .message
            .contains("`license` must be a non-empty string"));
    }

    #[test]
    fn step_blocks_and_key_lines() {
        let s = Source {
            path: "p.toml".into(),
            text: "name = \"x\"\n\n[[step]]\nid = \"a\"\nkind = \"load\"\n\n[[step]]\nid = \"b\"\nbogus = 1\n".into(),
        };
        let b = s.step_blocks();
        assert_eq!(b, vec![(3, 6), (7, 9)]);
        assert_eq!(s.key_line("bogus", 7, 9), Some(9));
        assert_eq!(s.key_line("id", 3, 6), Some(4));
    }
}
