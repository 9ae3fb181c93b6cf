//! Typed outputs: a JSON Schema from the pipeline file, the reply checked against it, and
//! JSON paths into the reply mapped to record fields.
//!
//! The schema is sent with the request (`response_format` for OpenAI-compatible servers,
//! the tool-use form for Anthropic), but a server may ignore it, a small model may break
//! it, and a cached answer may predate it — so every reply is parsed and validated here
//! regardless. A reply that does not parse or validate is a `schema` failure carrying the
//! raw text; nothing of it becomes a record.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A JSON file named by a pipeline option (`schema_file`, `tools_file`), relative to the
/// pipeline file's folder; the errors name the option and the file.
pub(crate) fn read_json_file(
    option: &str,
    f: &str,
    base_dir: &Path,
) -> Result<(Value, PathBuf), String> {
    let p = if Path::new(f).is_absolute() {
        PathBuf::from(f)
    } else {
        base_dir.join(f)
    };
    let text = std::fs::read_to_string(&p).map_err(|e| {
        format!(
            "`{option}`: {} cannot be read ({e}); relative paths start at the pipeline file's folder",
            p.display()
        )
    })?;
    let v = serde_json::from_str(&text)
        .map_err(|e| format!("`{option}`: {} is not JSON ({e})", p.display()))?;
    Ok((v, p))
}

/// A checked JSON Schema and its validator.
pub struct OutputSchema {
    /// The schema as given (sent to the server).
    pub schema: Value,
    validator: jsonschema::Validator,
    /// The file it was read from, for the config hash.
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSchema")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl OutputSchema {
    /// A schema written inline in the pipeline (a TOML table) or read from a `.json`
    /// file (relative to `base_dir`); an invalid schema is an error saying why.
    pub fn load(
        inline: Option<&toml::Value>,
        file: Option<&str>,
        base_dir: &Path,
    ) -> Result<OutputSchema, String> {
        let (schema, path) = match (inline, file) {
            (Some(_), Some(_)) => {
                return Err("set either `schema` or `schema_file`, not both".into());
            }
            (None, None) => {
                return Err(
                    "`output = \"json\"` needs a JSON Schema: `schema = { type = \"object\", … }` or `schema_file = \"schemas/x.json\"`"
                        .into(),
                )
            }
            (Some(t), None) => (
                serde_json::to_value(t).map_err(|e| format!("`schema`: {e}"))?,
                None,
            ),
            (None, Some(f)) => {
                let (v, p) = read_json_file("schema_file", f, base_dir)?;
                (v, Some(p))
            }
        };
        let mut s = OutputSchema::from_value(schema)?;
        s.file = path;
        Ok(s)
    }

    /// A schema given as a JSON value (a tool's `parameters`); an invalid schema is an
    /// error saying why.
    pub fn from_value(schema: Value) -> Result<OutputSchema, String> {
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| format!("the JSON Schema is not valid: {e}"))?;
        Ok(OutputSchema {
            schema,
            validator,
            file: None,
        })
    }

    /// The reply as a JSON value that validates, or why not. A reply wrapped in a
    /// Markdown code fence (what small models do when asked for JSON) is unwrapped
    /// first; nothing else is forgiven.
    pub fn parse_reply(&self, reply: &str) -> Result<Value, String> {
        let text = unfence(reply);
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("the reply is not JSON ({e})"))?;
        self.check(&v)
            .map_err(|e| format!("the reply does not match the schema: {e}"))?;
        Ok(v)
    }

    /// Whether `v` validates; the error lists the first three violations.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(v)
            .take(3)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The JSON type(s) the schema allows at a dotted `path` (`answer`, `meta.topic`),
    /// or an error naming the properties that do exist there.
    pub fn type_at(&self, path: &str) -> Result<Vec<String>, String> {
        let mut node = &self.schema;
        let mut walked = Vec::new();
        for part in path.split('.') {
            let props = node.get("properties").and_then(|p| p.as_object());
            match props.and_then(|p| p.get(part)) {
                Some(next) => {
                    node = next;
                    walked.push(part);
                }
                None => {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let at = if walked.is_empty() {
                        "the schema".to_string()
                    } else {
                        format!("`{}`", walked.join("."))
                    };
                    return Err(if known.is_empty() {
                        format!("`{path}`: {at} declares no properties")
                    } else {
                        format!(
                            "`{path}` is not in the schema; {at} has: {}",
                            known.join(", ")
                        )
                    });
                }
            }
        }
        Ok(types_of(node))
    }
}

/// The `type`s a schema node allows (an `enum` of strings counts as `string`).
fn types_of(node: &Value) -> Vec<String> {
    match node.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ => match node.get("enum").and_then(|e| e.as_array()) {
            Some(vals) if vals.iter().all(|v| v.is_string()) => vec!["string".into()],
            _ => vec![],
        },
    }
}

/// The text inside a single Markdown code fence (```` ```json … ``` ````), or the
/// trimmed text itself.
fn unfence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let Some(body) = rest.strip_suffix("```") else {
        return t;
    };
    // Drop the info string (`json`) on the opening line.
    match body.find('\n') {
        Some(nl) if !body[..nl].contains('{') && !body[..nl].contains('[') => body[nl + 1..].trim(),
        _ => body.trim(),
    }
}

/// The value at a dotted path of a JSON object (`None` when absent or null).
pub fn value_at<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    (!cur.is_null()).then_some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> OutputSchema {
        let t: toml::Value = toml::from_str(
            r#"
            type = "object"
            required = ["question", "answer", "difficulty"]
            additionalProperties = false
            [properties.question]
            type = "string"
            [properties.answer]
            type = "string"
            [properties.difficulty]
            type = "integer"
            minimum = 1
            maximum = 5
            [properties.meta]
            type = "object"
            properties = { topic = { enum = ["math", "code"] } }
            "#,
        )
        .unwrap();
        OutputSchema::load(Some(&t), None, Path::new(".")).unwrap()
    }

    #[test]
    fn valid_replies_parse_fenced_or_not() {
        let s = schema();
        let ok = r#"{"question": "2+2?", "answer": "4", "difficulty": 1}"#;
        assert_eq!(s.parse_reply(ok).unwrap()["answer"], "4");
        let fenced = format!("```json\n{ok}\n```");
        assert_eq!(s.parse_reply(&fenced).unwrap()["difficulty"], 1);
    }

    #[test]
    fn invalid_replies_say_why() {
        let s = schema();
        let e = s.parse_reply("Sure! Here is your JSON:").unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        let e = s
            .parse_reply(r#"{"question": "2+2?", "answer": "4", "difficulty": 9}"#)
            .unwrap_err();
        assert!(e.contains("/difficulty") && e.contains('9'), "{e}");
        let e = s.parse_reply(r#"{"question": "2+2?"}"#).unwrap_err();
        assert!(e.contains("answer"), "{e}");
    }

    #[test]
    fn paths_are_checked_against_the_schema() {
        let s = schema();
        assert_eq!(s.type_at("difficulty").unwrap(), vec!["integer"]);
        assert_eq!(s.type_at("meta.topic").unwrap(), vec!["string"]);
        let e = s.type_at("answr").unwrap_err();
        assert!(e.contains("question") && e.contains("answer"), "{e}");
        let e = s.type_at("meta.lang").unwrap_err();
        assert!(e.contains("`meta` has: topic"), "{e}");
    }

    #[test]
    fn a_broken_schema_is_an_error() {
        let t: toml::Value = toml::from_str("type = 3").unwrap();
        let e = OutputSchema::load(Some(&t), None, Path::new(".")).unwrap_err();
        assert!(e.contains("not valid"), "{e}");
        let e = OutputSchema::load(None, None, Path::new(".")).unwrap_err();
        assert!(e.contains("schema_file"), "{e}");
    }
}
