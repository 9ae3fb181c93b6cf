//! Tools a `generate` step offers the teacher: OpenAI-format function definitions from
//! the pipeline (inline or a `.json` file) or each record's own `tools`, and the check
//! every call the teacher makes must pass before it is written — a known function, JSON
//! arguments, valid for that function's `parameters` schema. The calls are recorded,
//! not executed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use retort_core::ToolCall;
use serde_json::{json, Value};

use super::structured::{read_json_file, OutputSchema};

/// Function definitions with their argument validators.
#[derive(Debug)]
pub struct ToolSet {
    /// The definitions in OpenAI form (`{"type": "function", "function": {…}}`), as sent
    /// and as written to the record's `tools`.
    pub definitions: Vec<Value>,
    params: BTreeMap<String, OutputSchema>,
}

/// Where a step's tools come from.
#[derive(Debug)]
pub enum ToolSource {
    /// The same definitions for every record.
    Fixed(Arc<ToolSet>),
    /// Each record's own `tools` (`tools = "record"`).
    Record,
}

impl ToolSource {
    /// `tools` as written in a pipeline (an array of definitions, or `"record"`) or a
    /// `tools_file` (a JSON array, relative to `base_dir`). Returns the file read, if
    /// any, for the config hash.
    pub fn load(
        inline: Option<&toml::Value>,
        file: Option<&str>,
        base_dir: &Path,
    ) -> Result<(Option<ToolSource>, Option<PathBuf>), String> {
        match (inline, file) {
            (Some(_), Some(_)) => Err("set either `tools` or `tools_file`, not both".into()),
            (None, None) => Ok((None, None)),
            (Some(toml::Value::String(s)), None) if s == "record" => {
                Ok((Some(ToolSource::Record), None))
            }
            (Some(toml::Value::Array(a)), None) => {
                let defs = serde_json::to_value(a).map_err(|e| format!("`tools`: {e}"))?;
                let set = ToolSet::new(defs).map_err(|e| format!("`tools`: {e}"))?;
                Ok((Some(ToolSource::Fixed(Arc::new(set))), None))
            }
            (Some(other), None) => Err(format!(
                "`tools` is {}; write an array of function definitions (`tools = [{{ type = \"function\", function = {{ name = \"…\", parameters = {{ … }} }} }}]`), \"record\" to offer each record's own tools, or use `tools_file`",
                other.type_str()
            )),
            (None, Some(f)) => {
                let (defs, p) = read_json_file("tools_file", f, base_dir)?;
                let set = ToolSet::new(defs)
                    .map_err(|e| format!("`tools_file` {}: {e}", p.display()))?;
                Ok((Some(ToolSource::Fixed(Arc::new(set))), Some(p)))
            }
        }
    }
}

impl ToolSet {
    /// Checks definitions (a JSON array): each names its function once and, if it has
    /// `parameters`, they are a valid JSON Schema. The short form `{name, description,
    /// parameters}` is accepted and written in the OpenAI form.
    pub fn new(defs: Value) -> Result<ToolSet, String> {
        let Value::Array(items) = defs else {
            return Err("tool definitions must be a JSON array".into());
        };
        if items.is_empty() {
            return Err("the list of tools is empty".into());
        }
        let mut definitions = Vec::with_capacity(items.len());
        let mut params = BTreeMap::new();
        for (i, t) in items.into_iter().enumerate() {
            let f = match t.get("function") {
                Some(f) => f.clone(),
                None => t.clone(),
            };
            let name = f
                .get("name")
                .and_then(|n| n.as_str())
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("tool {} has no function `name`", i + 1))?
                .to_string();
            let schema = f
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            let validator = OutputSchema::from_value(schema)
                .map_err(|e| format!("the parameters of tool `{name}`: {e}"))?;
            if params.insert(name.clone(), validator).is_some() {
                return Err(format!("two tools are named `{name}`"));
            }
            definitions.push(json!({"type": "function", "function": f}));
        }
        Ok(ToolSet {
            definitions,
            params,
        })
    }

    /// Every call names an offered function and has arguments valid for it; the error
    /// says which call and why.
    pub fn check_calls(&self, calls: &[ToolCall]) -> Result<(), String> {
        for c in calls {
            let Some(schema) = self.params.get(&c.name) else {
                return Err(format!(
                    "the teacher called `{}`, which was not offered (offered: {})",
                    c.name,
                    self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            let args: Value = serde_json::from_str(&c.arguments).map_err(|e| {
                format!(
                    "the arguments of the call to `{}` are not JSON ({e})",
                    c.name
                )
            })?;
            schema.check(&args).map_err(|e| {
                format!(
                    "the arguments of the call to `{}` do not match its parameters: {e}",
                    c.name
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> ToolSet {
        ToolSet::new(json!([{
            "name": "get_weather",
            "parameters": {"type": "object", "required": ["city"],
                           "properties": {"city": {"type": "string"}}}
        }]))
        .unwrap()
    }

    fn call(name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: None,
            name: name.into(),
            arguments: args.into(),
        }
    }

    #[test]
    fn short_form_is_written_in_openai_form() {
        let t = weather();
        assert_eq!(t.definitions[0]["type"], "function");
        assert_eq!(t.definitions[0]["function"]["name"], "get_weather");
    }

    #[test]
    fn calls_are_checked_against_their_parameters() {
        let t = weather();
        assert!(t
            .check_calls(&[call("get_weather", r#"{"city":"Oslo"}"#)])
            .is_ok());
        let e = t.check_calls(&[call("get_time", "{}")]).unwrap_err();
        assert!(e.contains("not offered"), "{e}");
        let e = t.check_calls(&[call("get_weather", "{city")]).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        let e = t
            .check_calls(&[call("get_weather", r#"{"town":1}"#)])
            .unwrap_err();
        assert!(e.contains("do not match"), "{e}");
    }

    #[test]
    fn bad_definitions_are_refused() {
        assert!(ToolSet::new(json!([])).is_err());
        assert!(ToolSet::new(json!([{"description": "x"}]))
            .unwrap_err()
            .contains("name"));
        let dup = json!([{"name": "a"}, {"name": "a"}]);
        assert!(ToolSet::new(dup).unwrap_err().contains("two tools"));
        let bad = json!([{"name": "a", "parameters": {"type": 7}}]);
        assert!(ToolSet::new(bad).unwrap_err().contains("not valid"));
    }
}
