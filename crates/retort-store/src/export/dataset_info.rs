//! LLaMA-Factory's `dataset_info.json`: the file in a data directory that tells
//! LLaMA-Factory how to read each dataset in it. An export with `dataset_info` adds (or
//! replaces) the entry for its file, named after the file's stem, and keeps every other
//! entry, so several exports can share one directory and a re-run changes nothing.

use std::path::Path;
use std::sync::Mutex;

use serde_json::{json, Map, Value};

use super::ExportFormat;
use crate::atomic::write_bytes_atomic;
use crate::error::io_err;
use crate::StoreError;

/// The entry LLaMA-Factory needs for a file of `format` called `file_name`, or `None`
/// when it has no such format.
pub(crate) fn entry(format: ExportFormat, file_name: &str) -> Option<Value> {
    entry_with(format, file_name, false)
}

/// [`entry`] for an export written with `tools = true`: the ShareGPT entry also names
/// the `tools` column and the `function_call`/`observation` tags.
pub(crate) fn entry_with(format: ExportFormat, file_name: &str, tools: bool) -> Option<Value> {
    let mut e = entry_for(format, file_name)?;
    if tools && format == ExportFormat::ShareGpt {
        e["columns"]["tools"] = json!("tools");
        e["tags"]["function_tag"] = json!("function_call");
        e["tags"]["observation_tag"] = json!("observation");
    }
    Some(e)
}

fn entry_for(format: ExportFormat, file_name: &str) -> Option<Value> {
    Some(match format {
        ExportFormat::Alpaca => json!({
            "file_name": file_name,
            "columns": {"prompt": "instruction", "query": "input", "response": "output"},
        }),
        ExportFormat::AlpacaRanking => json!({
            "file_name": file_name,
            "ranking": true,
            "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"},
        }),
        ExportFormat::ShareGpt => json!({
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": {
                "role_tag": "from", "content_tag": "value",
                "user_tag": "human", "assistant_tag": "gpt", "system_tag": "system",
            },
        }),
        ExportFormat::Messages => json!({
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {
                "role_tag": "role", "content_tag": "content",
                "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system",
            },
        }),
        _ => return None,
    })
}

/// Read-modify-write of one directory's file must not interleave between two export
/// steps finishing at once; a run is one process, so a process-wide lock is enough.
static LOCK: Mutex<()> = Mutex::new(());

/// Add the entry for the export at `path` to `dataset_info.json` beside it.
pub(crate) fn write_entry(
    path: &Path,
    format: ExportFormat,
    tools: bool,
) -> Result<(), StoreError> {
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = path
        .file_stem()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(entry) = entry_with(format, &file_name, tools) else {
        return Ok(());
    };
    let info = path.with_file_name("dataset_info.json");
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut all = match std::fs::read(&info) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(StoreError::Content {
                    path: info,
                    message: "is not a JSON object, so the export cannot add its LLaMA-Factory entry; fix or delete the file, or set `dataset_info = false`".into(),
                })
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(io_err(&info)(e)),
    };
    all.insert(name, entry);
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(all))
        .expect("serialising JSON values to memory cannot fail");
    bytes.push(b'\n');
    write_bytes_atomic(&info, &bytes)
}
