//! Export of records to the formats training tools read, as Parquet or JSONL.
//!
//! | format | columns | read by |
//! |---|---|---|
//! | `records` | retort's internal schema | retort, any Arrow tool |
//! | `messages` | `messages`, `id` | TRL `SFTTrainer`, OpenAI fine-tuning, HF chat templates |
//! | `alpaca` | `instruction`, `input`, `output` | Alpaca / LLaMA-Factory / axolotl `alpaca` |
//! | `sharegpt` | `conversations`, `id` | FastChat, LLaMA-Factory / axolotl `sharegpt` |
//! | `dpo` | `prompt`, `chosen`, `rejected` strings + extras | TRL `DPOTrainer` (standard) |
//! | `dpo_conversational` | same, as message lists | TRL `DPOTrainer` (conversational) |
//!
//! Records a format cannot express are returned by [`Exporter::write`] with the reason,
//! never written half-filled. The output appears at its path only on
//! [`Exporter::finish`]; an exporter dropped before that leaves nothing behind.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use retort_core::{Message, Pair, Record};
use sha2::{Digest, Sha256};

use crate::atomic::TempFile;
use crate::build::{list_of, utf8, StrCol, StrPairList};
use crate::error::io_err;
use crate::parquet_io::AtomicParquetWriter;
use crate::schema::{messages_type, record_schema, records_to_batch};
use crate::StoreError;

/// An export format (see the module docs and `docs/formats.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// retort's internal record schema.
    Records,
    /// OpenAI / TRL SFT chat: `messages: list<struct<role, content>>`, `id`.
    Messages,
    /// Alpaca: `instruction`, `input` (empty when none), `output`.
    Alpaca,
    /// ShareGPT: `conversations: list<struct<from, value>>` (system/human/gpt), `id`.
    ShareGpt,
    /// TRL standard preference format: `prompt`, `chosen`, `rejected` strings.
    Dpo,
    /// TRL conversational preference format: message lists.
    DpoConversational,
}

impl ExportFormat {
    /// Every format, in documentation order.
    pub const ALL: [ExportFormat; 6] = [
        ExportFormat::Records,
        ExportFormat::Messages,
        ExportFormat::Alpaca,
        ExportFormat::ShareGpt,
        ExportFormat::Dpo,
        ExportFormat::DpoConversational,
    ];

    /// Parse a format name as written in a pipeline file.
    pub fn from_name(name: &str) -> Result<ExportFormat, StoreError> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| StoreError::UnknownFormat(name.to_string()))
    }

    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Records => "records",
            ExportFormat::Messages => "messages",
            ExportFormat::Alpaca => "alpaca",
            ExportFormat::ShareGpt => "sharegpt",
            ExportFormat::Dpo => "dpo",
            ExportFormat::DpoConversational => "dpo_conversational",
        }
    }

    /// The Arrow schema of this format's Parquet output (JSONL uses the same field names).
    pub fn schema(self) -> SchemaRef {
        let dpo_extra = || {
            vec![
                utf8("prompt_id", false),
                utf8("chosen_model", false),
                utf8("rejected_model", false),
                Field::new("chosen_score", DataType::Float64, false),
                Field::new("rejected_score", DataType::Float64, false),
                Field::new("margin", DataType::Float64, false),
                utf8("rationale", true),
            ]
        };
        match self {
            ExportFormat::Records => record_schema(),
            ExportFormat::Messages => Arc::new(Schema::new(vec![
                Field::new("messages", messages_type(), false),
                utf8("id", false),
            ])),
            ExportFormat::Alpaca => Arc::new(Schema::new(vec![
                utf8("instruction", false),
                utf8("input", false),
                utf8("output", false),
            ])),
            ExportFormat::ShareGpt => Arc::new(Schema::new(vec![
                Field::new("conversations", sharegpt_type(), false),
                utf8("id", false),
            ])),
            ExportFormat::Dpo => {
                let mut f = vec![
                    utf8("prompt", false),
                    utf8("chosen", false),
                    utf8("rejected", false),
                ];
                f.extend(dpo_extra());
                Arc::new(Schema::new(f))
            }
            ExportFormat::DpoConversational => {
                let mut f = vec![
                    Field::new("prompt", messages_type(), false),
                    Field::new("chosen", messages_type(), false),
                    Field::new("rejected", messages_type(), false),
                ];
                f.extend(dpo_extra());
                Arc::new(Schema::new(f))
            }
        }
    }
}

fn sharegpt_type() -> DataType {
    list_of(DataType::Struct(
        vec![utf8("from", false), utf8("value", false)].into(),
    ))
}

/// The file container of an export, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// `.parquet`
    Parquet,
    /// `.jsonl`
    Jsonl,
}

impl Container {
    /// `.parquet` → Parquet, `.jsonl` → JSONL.
    pub fn from_path(path: &Path) -> Result<Container, StoreError> {
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("parquet") => Ok(Container::Parquet),
            Some("jsonl") => Ok(Container::Jsonl),
            _ => Err(StoreError::UnknownExtension {
                path: path.to_path_buf(),
                expected: "export paths must end in .parquet or .jsonl",
            }),
        }
    }
}

enum Sink {
    // Boxed: the Parquet writer is much larger than the JSONL variant.
    Parquet(Box<AtomicParquetWriter>),
    Jsonl {
        temp: TempFile,
        out: BufWriter<File>,
        buf: Vec<u8>,
    },
}

/// A streaming export writer; see the module docs.
pub struct Exporter {
    format: ExportFormat,
    path: PathBuf,
    sink: Sink,
    rows: u64,
}

/// A record that could not be exported: `(record id, reason)`.
pub type Skipped = (String, String);

impl Exporter {
    /// Start an export to `path` (`.parquet` or `.jsonl`).
    pub fn create(path: &Path, format: ExportFormat) -> Result<Exporter, StoreError> {
        let sink = match Container::from_path(path)? {
            Container::Parquet => Sink::Parquet(Box::new(AtomicParquetWriter::create(
                path,
                format.schema(),
                &[("retort.export_format", format.name())],
            )?)),
            Container::Jsonl => {
                let (temp, file) = TempFile::create(path)?;
                Sink::Jsonl {
                    temp,
                    out: BufWriter::with_capacity(1 << 20, file),
                    buf: Vec::with_capacity(1 << 16),
                }
            }
        };
        Ok(Exporter {
            format,
            path: path.to_path_buf(),
            sink,
            rows: 0,
        })
    }

    /// The export format.
    pub fn format(&self) -> ExportFormat {
        self.format
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Write records; returns those the format cannot express, with the reason, for the
    /// caller to log as failures. The others are written in input order.
    pub fn write(&mut self, records: &[Record]) -> Result<Vec<Skipped>, StoreError> {
        let mut skipped = Vec::new();
        let written = match &mut self.sink {
            Sink::Parquet(w) => {
                let batch = to_batch(self.format, records, &mut skipped)
                    .map_err(|e| e.in_file(&self.path))?;
                w.write(&batch)?;
                batch.num_rows()
            }
            Sink::Jsonl { out, buf, .. } => {
                let mut n = 0;
                for r in records {
                    buf.clear();
                    match to_json(self.format, r, buf) {
                        Ok(()) => {
                            buf.push(b'\n');
                            out.write_all(buf).map_err(io_err(&self.path))?;
                            n += 1;
                        }
                        Err(reason) => skipped.push((r.id.clone(), reason)),
                    }
                }
                n
            }
        };
        self.rows += written as u64;
        Ok(skipped)
    }

    /// Complete the file and move it into place atomically. Returns the rows written.
    pub fn finish(self) -> Result<u64, StoreError> {
        match self.sink {
            Sink::Parquet(w) => w.finish(),
            Sink::Jsonl { temp, out, .. } => {
                let file = out
                    .into_inner()
                    .map_err(|e| io_err(&self.path)(e.into_error()))?;
                temp.commit(file)?;
                Ok(self.rows)
            }
        }
    }
}

// ---------------------------------------------------------------- per-format views

/// The chat view without cloning when the record already has messages.
fn chat(r: &Record) -> Cow<'_, [Message]> {
    if r.messages.is_empty() {
        Cow::Owned(r.chat())
    } else {
        Cow::Borrowed(&r.messages)
    }
}

fn sft_chat(r: &Record) -> Result<Cow<'_, [Message]>, String> {
    let c = chat(r);
    if c.is_empty() {
        return Err("record has no messages and no instruction/output".into());
    }
    if !c.iter().any(|m| m.role == "assistant") {
        return Err("record has no assistant turn, so there is no response to train on".into());
    }
    Ok(c)
}

struct Alpaca<'a> {
    instruction: &'a str,
    input: &'a str,
    output: &'a str,
}

fn alpaca(r: &Record) -> Result<Alpaca<'_>, String> {
    if let Some(instruction) = r.instruction.as_deref() {
        let output = match r.output.as_deref() {
            Some(o) => o,
            None => r
                .messages
                .iter()
                .rev()
                .find(|m| m.role == "assistant")
                .map(|m| m.content.as_str())
                .ok_or("record has an instruction but no output")?,
        };
        return Ok(Alpaca {
            instruction,
            input: r.input.as_deref().unwrap_or(""),
            output,
        });
    }
    // A single user/assistant exchange is exactly an instruction and its output.
    match r.messages.as_slice() {
        [u, a] if u.role == "user" && a.role == "assistant" => Ok(Alpaca {
            instruction: &u.content,
            input: "",
            output: &a.content,
        }),
        [] => Err("record has no instruction and no messages".into()),
        m => Err(format!(
            "record has no instruction and its {} messages are not one user/assistant exchange (Alpaca cannot hold system prompts or several turns); export `messages` or `sharegpt` instead",
            m.len()
        )),
    }
}

fn sharegpt_role(role: &str) -> Result<&'static str, String> {
    match role {
        "system" => Ok("system"),
        "user" => Ok("human"),
        "assistant" => Ok("gpt"),
        other => Err(format!("role `{other}` has no ShareGPT equivalent")),
    }
}

struct Dpo<'a> {
    prompt: Vec<Message>,
    prompt_id: String,
    pair: &'a Pair,
}

fn dpo(r: &Record) -> Result<Dpo<'_>, String> {
    let pair = r
        .pair
        .as_ref()
        .ok_or("record has no preference pair (run a `pair` step before a DPO export)")?;
    let prompt = r.prompt_messages();
    if prompt.is_empty() {
        return Err("record has a pair but no prompt (no messages and no instruction)".into());
    }
    if pair.chosen.is_empty() || pair.rejected.is_empty() {
        return Err("pair has an empty chosen or rejected answer".into());
    }
    let prompt_id = prompt_id(&prompt);
    Ok(Dpo {
        prompt,
        prompt_id,
        pair,
    })
}

/// sha256 hex of the prompt text: the user turn's content for a single-turn prompt (the
/// convention of UltraFeedback-style datasets), else the compact JSON of the turns.
pub fn prompt_id(prompt: &[Message]) -> String {
    let mut h = Sha256::new();
    match prompt {
        [only] if only.role == "user" => h.update(only.content.as_bytes()),
        turns => {
            h.update(serde_json::to_vec(turns).expect("serialising strings to memory cannot fail"))
        }
    }
    hex::encode(h.finalize())
}

/// The standard (string) DPO view: a single user prompt and one assistant message each.
fn dpo_strings<'a>(d: &'a Dpo<'_>) -> Result<(&'a str, &'a str, &'a str), String> {
    let prompt = match d.prompt.as_slice() {
        [only] if only.role == "user" => only.content.as_str(),
        turns => {
            return Err(format!(
                "prompt has {} turns (or a system turn); the standard DPO format holds one prompt string — export `dpo_conversational` instead",
                turns.len()
            ))
        }
    };
    let one = |m: &'a [Message], which: &str| match m {
        [only] if only.role == "assistant" => Ok(only.content.as_str()),
        _ => Err(format!(
            "{which} is not a single assistant message; export `dpo_conversational` instead"
        )),
    };
    Ok((
        prompt,
        one(&d.pair.chosen, "chosen")?,
        one(&d.pair.rejected, "rejected")?,
    ))
}

// ---------------------------------------------------------------- Parquet batches

fn to_batch(
    format: ExportFormat,
    records: &[Record],
    skipped: &mut Vec<Skipped>,
) -> Result<RecordBatch, StoreError> {
    let n = records.len();
    let schema = format.schema();
    let columns: Vec<ArrayRef> = match format {
        ExportFormat::Records => return records_to_batch(records),
        ExportFormat::Messages => {
            let mut msgs = StrPairList::new("messages", n);
            let mut id = StrCol::new("id", n);
            for r in records {
                match sft_chat(r) {
                    Ok(c) => {
                        msgs.push_messages(&c)?;
                        id.push(&r.id)?;
                    }
                    Err(e) => skipped.push((r.id.clone(), e)),
                }
            }
            vec![msgs.finish(&messages_type())?, id.finish()]
        }
        ExportFormat::Alpaca => {
            let mut cols = [
                StrCol::new("instruction", n),
                StrCol::new("input", n),
                StrCol::new("output", n),
            ];
            for r in records {
                match alpaca(r) {
                    Ok(a) => {
                        cols[0].push(a.instruction)?;
                        cols[1].push(a.input)?;
                        cols[2].push(a.output)?;
                    }
                    Err(e) => skipped.push((r.id.clone(), e)),
                }
            }
            cols.into_iter().map(StrCol::finish).collect()
        }
        ExportFormat::ShareGpt => {
            let mut conv = StrPairList::new("conversations", n);
            let mut id = StrCol::new("id", n);
            for r in records {
                let turns = sft_chat(r).and_then(|c| {
                    c.iter()
                        .map(|m| Ok((sharegpt_role(&m.role)?, m.content.clone())))
                        .collect::<Result<Vec<_>, String>>()
                });
                match turns {
                    Ok(t) => {
                        for (from, value) in &t {
                            conv.push_item(from, value)?;
                        }
                        conv.close()?;
                        id.push(&r.id)?;
                    }
                    Err(e) => skipped.push((r.id.clone(), e)),
                }
            }
            vec![conv.finish(&sharegpt_type())?, id.finish()]
        }
        ExportFormat::Dpo | ExportFormat::DpoConversational => {
            let conversational = format == ExportFormat::DpoConversational;
            let mut p_list = StrPairList::new("prompt", n);
            let mut c_list = StrPairList::new("chosen", n);
            let mut r_list = StrPairList::new("rejected", n);
            let mut p_str = StrCol::new("prompt", n);
            let mut c_str = StrCol::new("chosen", n);
            let mut r_str = StrCol::new("rejected", n);
            let mut extra = DpoExtra::new(n);
            for r in records {
                let d = match dpo(r) {
                    Ok(d) => d,
                    Err(e) => {
                        skipped.push((r.id.clone(), e));
                        continue;
                    }
                };
                if conversational {
                    p_list.push_messages(&d.prompt)?;
                    c_list.push_messages(&d.pair.chosen)?;
                    r_list.push_messages(&d.pair.rejected)?;
                } else {
                    match dpo_strings(&d) {
                        Ok((p, c, rj)) => {
                            p_str.push(p)?;
                            c_str.push(c)?;
                            r_str.push(rj)?;
                        }
                        Err(e) => {
                            skipped.push((r.id.clone(), e));
                            continue;
                        }
                    }
                }
                extra.push(&d)?;
            }
            let mut cols = if conversational {
                vec![
                    p_list.finish(&messages_type())?,
                    c_list.finish(&messages_type())?,
                    r_list.finish(&messages_type())?,
                ]
            } else {
                vec![p_str.finish(), c_str.finish(), r_str.finish()]
            };
            cols.extend(extra.finish());
            cols
        }
    };
    RecordBatch::try_new(schema, columns).map_err(|e| StoreError::Schema(e.to_string()))
}

struct DpoExtra {
    prompt_id: StrCol,
    chosen_model: StrCol,
    rejected_model: StrCol,
    chosen_score: Vec<f64>,
    rejected_score: Vec<f64>,
    margin: Vec<f64>,
    rationale: StrCol,
}

impl DpoExtra {
    fn new(n: usize) -> Self {
        DpoExtra {
            prompt_id: StrCol::new("prompt_id", n),
            chosen_model: StrCol::new("chosen_model", n),
            rejected_model: StrCol::new("rejected_model", n),
            chosen_score: Vec::with_capacity(n),
            rejected_score: Vec::with_capacity(n),
            margin: Vec::with_capacity(n),
            rationale: StrCol::new("rationale", n),
        }
    }
    fn push(&mut self, d: &Dpo<'_>) -> Result<(), StoreError> {
        self.prompt_id.push(&d.prompt_id)?;
        self.chosen_model.push(&d.pair.chosen_model)?;
        self.rejected_model.push(&d.pair.rejected_model)?;
        self.chosen_score.push(d.pair.chosen_score);
        self.rejected_score.push(d.pair.rejected_score);
        self.margin.push(d.pair.margin);
        self.rationale.push_opt(d.pair.rationale.as_deref())
    }
    fn finish(self) -> Vec<ArrayRef> {
        vec![
            self.prompt_id.finish(),
            self.chosen_model.finish(),
            self.rejected_model.finish(),
            Arc::new(Float64Array::from(self.chosen_score)),
            Arc::new(Float64Array::from(self.rejected_score)),
            Arc::new(Float64Array::from(self.margin)),
            self.rationale.finish(),
        ]
    }
}

// ---------------------------------------------------------------- JSONL rows

fn js(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a JSON string to memory cannot fail");
}

fn jkey(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    js(out, key);
    out.push(b':');
}

fn jf64(out: &mut Vec<u8>, name: &str, v: f64) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!("`{name}` is {v}, which JSON cannot represent"));
    }
    serde_json::to_writer(&mut *out, &v).expect("writing a JSON number to memory cannot fail");
    Ok(())
}

fn jopt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => js(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// `[{"a":..,"b":..},..]`
fn jpairs<'x>(
    out: &mut Vec<u8>,
    a: &str,
    b: &str,
    items: impl Iterator<Item = (&'x str, &'x str)>,
) {
    out.push(b'[');
    for (i, (x, y)) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        js(out, a);
        out.push(b':');
        js(out, x);
        out.push(b',');
        js(out, b);
        out.push(b':');
        js(out, y);
        out.push(b'}');
    }
    out.push(b']');
}

fn jmessages(out: &mut Vec<u8>, m: &[Message]) {
    jpairs(
        out,
        "role",
        "content",
        m.iter().map(|m| (m.role.as_str(), m.content.as_str())),
    );
}

/// Messages in the internal schema's shape: `reasoning` on every turn, null when absent.
fn jrecord_messages(out: &mut Vec<u8>, m: &[Message]) {
    out.push(b'[');
    for (i, m) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut f = true;
        out.push(b'{');
        jkey(out, &mut f, "role");
        js(out, &m.role);
        jkey(out, &mut f, "content");
        js(out, &m.content);
        jkey(out, &mut f, "reasoning");
        jopt(out, m.reasoning.as_deref());
        out.push(b'}');
    }
    out.push(b']');
}

fn jstrs(out: &mut Vec<u8>, v: &[String]) {
    out.push(b'[');
    for (i, s) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        js(out, s);
    }
    out.push(b']');
}

/// One JSONL row of `format` (without the newline), or the reason it cannot be written.
fn to_json(format: ExportFormat, r: &Record, out: &mut Vec<u8>) -> Result<(), String> {
    let mut first = true;
    out.push(b'{');
    match format {
        ExportFormat::Records => record_json(r, out, &mut first)?,
        ExportFormat::Messages => {
            let c = sft_chat(r)?;
            jkey(out, &mut first, "messages");
            jmessages(out, &c);
            jkey(out, &mut first, "id");
            js(out, &r.id);
        }
        ExportFormat::Alpaca => {
            let a = alpaca(r)?;
            jkey(out, &mut first, "instruction");
            js(out, a.instruction);
            jkey(out, &mut first, "input");
            js(out, a.input);
            jkey(out, &mut first, "output");
            js(out, a.output);
        }
        ExportFormat::ShareGpt => {
            let c = sft_chat(r)?;
            let turns = c
                .iter()
                .map(|m| Ok((sharegpt_role(&m.role)?, m.content.as_str())))
                .collect::<Result<Vec<_>, String>>()?;
            jkey(out, &mut first, "conversations");
            jpairs(out, "from", "value", turns.into_iter());
            jkey(out, &mut first, "id");
            js(out, &r.id);
        }
        ExportFormat::Dpo | ExportFormat::DpoConversational => {
            let d = dpo(r)?;
            if format == ExportFormat::Dpo {
                let (p, c, rj) = dpo_strings(&d)?;
                jkey(out, &mut first, "prompt");
                js(out, p);
                jkey(out, &mut first, "chosen");
                js(out, c);
                jkey(out, &mut first, "rejected");
                js(out, rj);
            } else {
                jkey(out, &mut first, "prompt");
                jmessages(out, &d.prompt);
                jkey(out, &mut first, "chosen");
                jmessages(out, &d.pair.chosen);
                jkey(out, &mut first, "rejected");
                jmessages(out, &d.pair.rejected);
            }
            jkey(out, &mut first, "prompt_id");
            js(out, &d.prompt_id);
            jkey(out, &mut first, "chosen_model");
            js(out, &d.pair.chosen_model);
            jkey(out, &mut first, "rejected_model");
            js(out, &d.pair.rejected_model);
            jkey(out, &mut first, "chosen_score");
            jf64(out, "chosen_score", d.pair.chosen_score)?;
            jkey(out, &mut first, "rejected_score");
            jf64(out, "rejected_score", d.pair.rejected_score)?;
            jkey(out, &mut first, "margin");
            jf64(out, "margin", d.pair.margin)?;
            jkey(out, &mut first, "rationale");
            jopt(out, d.pair.rationale.as_deref());
        }
    }
    out.push(b'}');
    Ok(())
}

/// A record in the JSON shape of the internal Arrow schema (same keys and nesting, so
/// `pyarrow.json` and `datasets` infer the Parquet schema's structure).
fn record_json(r: &Record, out: &mut Vec<u8>, first: &mut bool) -> Result<(), String> {
    jkey(out, first, "id");
    js(out, &r.id);
    jkey(out, first, "instruction");
    jopt(out, r.instruction.as_deref());
    jkey(out, first, "input");
    jopt(out, r.input.as_deref());
    jkey(out, first, "output");
    jopt(out, r.output.as_deref());
    jkey(out, first, "messages");
    jrecord_messages(out, &r.messages);
    jkey(out, first, "candidates");
    out.push(b'[');
    for (i, c) in r.candidates.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut f = true;
        out.push(b'{');
        jkey(out, &mut f, "teacher");
        js(out, &c.teacher);
        jkey(out, &mut f, "model");
        js(out, &c.model);
        jkey(out, &mut f, "sample");
        out.extend_from_slice(c.sample.to_string().as_bytes());
        jkey(out, &mut f, "content");
        js(out, &c.content);
        jkey(out, &mut f, "score");
        match c.score {
            Some(s) => jf64(out, "candidates.score", s)?,
            None => out.extend_from_slice(b"null"),
        }
        jkey(out, &mut f, "rationale");
        jopt(out, c.rationale.as_deref());
        out.push(b'}');
    }
    out.push(b']');
    jkey(out, first, "pair");
    match &r.pair {
        None => out.extend_from_slice(b"null"),
        Some(p) => {
            let mut f = true;
            out.push(b'{');
            jkey(out, &mut f, "chosen");
            jrecord_messages(out, &p.chosen);
            jkey(out, &mut f, "rejected");
            jrecord_messages(out, &p.rejected);
            jkey(out, &mut f, "chosen_model");
            js(out, &p.chosen_model);
            jkey(out, &mut f, "rejected_model");
            js(out, &p.rejected_model);
            jkey(out, &mut f, "chosen_score");
            jf64(out, "pair.chosen_score", p.chosen_score)?;
            jkey(out, &mut f, "rejected_score");
            jf64(out, "pair.rejected_score", p.rejected_score)?;
            jkey(out, &mut f, "margin");
            jf64(out, "pair.margin", p.margin)?;
            jkey(out, &mut f, "rationale");
            jopt(out, p.rationale.as_deref());
            out.push(b'}');
        }
    }
    jkey(out, first, "scores");
    out.push(b'[');
    for (i, (k, v)) in r.scores.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        js(out, k);
        out.extend_from_slice(b",\"value\":");
        jf64(out, &format!("scores.{k}"), *v)?;
        out.push(b'}');
    }
    out.push(b']');
    jkey(out, first, "labels");
    jpairs(
        out,
        "key",
        "value",
        r.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    jkey(out, first, "embedding");
    match &r.embedding {
        None => out.extend_from_slice(b"null"),
        Some(e) => {
            out.push(b'[');
            for (i, x) in e.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if !x.is_finite() {
                    return Err(format!(
                        "`embedding` holds {x}, which JSON cannot represent"
                    ));
                }
                serde_json::to_writer(&mut *out, x)
                    .expect("writing a number to memory cannot fail");
            }
            out.push(b']');
        }
    }
    jkey(out, first, "cluster");
    match r.cluster {
        Some(c) => out.extend_from_slice(c.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    let p = &r.provenance;
    jkey(out, first, "step");
    js(out, &p.step);
    jkey(out, first, "teacher");
    jopt(out, p.teacher.as_deref());
    jkey(out, first, "template");
    jopt(out, p.template.as_deref());
    jkey(out, first, "parents");
    jstrs(out, &p.parents);
    jkey(out, first, "seeds");
    jstrs(out, &p.seeds);
    Ok(())
}
