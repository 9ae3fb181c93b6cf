//! Export of records to the formats training tools read, as Parquet or JSONL.
//!
//! | format | columns | read by |
//! |---|---|---|
//! | `records` | retort's internal schema | retort, any Arrow tool |
//! | `messages` | `messages`, `id` | TRL `SFTTrainer`, OpenAI fine-tuning, axolotl `chat_template` |
//! | `alpaca` | `instruction`, `input`, `output` | Alpaca / LLaMA-Factory / axolotl `alpaca` |
//! | `sharegpt` | `conversations`, `id` | FastChat, LLaMA-Factory `sharegpt` |
//! | `prompt_completion[_conversational]` | `prompt`, `completion`, `id` | TRL `SFTTrainer` (completion-only loss) |
//! | `prompt_only[_conversational]` | `prompt`, `id` | TRL `GRPOTrainer`, `RLOOTrainer`, online DPO |
//! | `dpo` / `dpo_conversational` | `prompt`, `chosen`, `rejected` + judge columns | TRL `DPOTrainer` |
//! | `kto[_conversational]` | `prompt`, `completion`, `label`, `prompt_id`, `id` | TRL `KTOTrainer` |
//! | `implicit_preference[_conversational]` | `chosen`, `rejected` (prompt inside) + judge columns | TRL `RewardTrainer` |
//! | `alpaca_ranking` | `instruction`, `input`, `chosen`, `rejected`, `id` | LLaMA-Factory (`ranking: true`) |
//!
//! Every format but `records` is a view ([`sft`], [`preference`]) producing rows of
//! typed cells, written by one Parquet and one JSONL writer ([`columns`]). Records a
//! format cannot express are returned by [`Exporter::write`] with the reason, never
//! written half-filled. The output appears at its path only on [`Exporter::finish`]; an
//! exporter dropped before that leaves nothing behind.

mod columns;
mod dataset_info;
mod jsonl;
mod options;
mod preference;
mod sft;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use retort_core::Record;

use crate::atomic::TempFile;
use crate::error::io_err;
use crate::parquet_io::AtomicParquetWriter;
use crate::schema::{record_schema, records_to_batch};
use crate::StoreError;
use columns::{schema_of, BatchBuilder, Cell, Column, Kind, Row};
use options::{Answer, TurnRule};

pub use options::{ExportOptions, KeepColumn, Reasoning};
pub use preference::prompt_id;

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
    /// TRL standard prompt-completion: `prompt`, `completion` strings.
    PromptCompletion,
    /// TRL conversational prompt-completion: the turns before the last answer, and it.
    PromptCompletionConversational,
    /// TRL standard prompt-only: `prompt` string.
    PromptOnly,
    /// TRL conversational prompt-only: `prompt` message list.
    PromptOnlyConversational,
    /// TRL standard preference format: `prompt`, `chosen`, `rejected` strings.
    Dpo,
    /// TRL conversational preference format: message lists.
    DpoConversational,
    /// TRL standard unpaired preference (KTO): `prompt`, `completion`, `label`.
    Kto,
    /// TRL conversational unpaired preference (KTO).
    KtoConversational,
    /// TRL standard preference with implicit prompt: `chosen`, `rejected` full texts.
    ImplicitPreference,
    /// TRL conversational preference with implicit prompt: full conversations.
    ImplicitPreferenceConversational,
    /// LLaMA-Factory's Alpaca ranking: `instruction`, `input`, `chosen`, `rejected`.
    AlpacaRanking,
}

impl ExportFormat {
    /// Every format, in documentation order.
    pub const ALL: [ExportFormat; 15] = [
        ExportFormat::Records,
        ExportFormat::Messages,
        ExportFormat::Alpaca,
        ExportFormat::ShareGpt,
        ExportFormat::PromptCompletion,
        ExportFormat::PromptCompletionConversational,
        ExportFormat::PromptOnly,
        ExportFormat::PromptOnlyConversational,
        ExportFormat::Dpo,
        ExportFormat::DpoConversational,
        ExportFormat::Kto,
        ExportFormat::KtoConversational,
        ExportFormat::ImplicitPreference,
        ExportFormat::ImplicitPreferenceConversational,
        ExportFormat::AlpacaRanking,
    ];

    /// Parse a format name as written in a pipeline file.
    pub fn from_name(name: &str) -> Result<ExportFormat, StoreError> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| StoreError::UnknownFormat(name.to_string()))
    }

    /// Every format name, comma-separated (for error messages).
    pub fn names() -> String {
        ExportFormat::ALL.map(ExportFormat::name).join(", ")
    }

    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Records => "records",
            ExportFormat::Messages => "messages",
            ExportFormat::Alpaca => "alpaca",
            ExportFormat::ShareGpt => "sharegpt",
            ExportFormat::PromptCompletion => "prompt_completion",
            ExportFormat::PromptCompletionConversational => "prompt_completion_conversational",
            ExportFormat::PromptOnly => "prompt_only",
            ExportFormat::PromptOnlyConversational => "prompt_only_conversational",
            ExportFormat::Dpo => "dpo",
            ExportFormat::DpoConversational => "dpo_conversational",
            ExportFormat::Kto => "kto",
            ExportFormat::KtoConversational => "kto_conversational",
            ExportFormat::ImplicitPreference => "implicit_preference",
            ExportFormat::ImplicitPreferenceConversational => "implicit_preference_conversational",
            ExportFormat::AlpacaRanking => "alpaca_ranking",
        }
    }

    /// Whether the format is a view of the pair (the preference family).
    fn is_preference(self) -> bool {
        matches!(
            self,
            ExportFormat::Dpo
                | ExportFormat::DpoConversational
                | ExportFormat::Kto
                | ExportFormat::KtoConversational
                | ExportFormat::ImplicitPreference
                | ExportFormat::ImplicitPreferenceConversational
                | ExportFormat::AlpacaRanking
        )
    }

    /// Whether the format writes the record's `id` (the ones that did not before the
    /// option existed keep their columns as they were).
    pub fn has_id(self) -> bool {
        !matches!(
            self,
            ExportFormat::Alpaca | ExportFormat::Dpo | ExportFormat::DpoConversational
        )
    }

    /// Whether the format writes chat turns as lists (where reasoning can be a field).
    pub fn writes_turns(self) -> bool {
        matches!(
            self,
            ExportFormat::Messages
                | ExportFormat::ShareGpt
                | ExportFormat::PromptCompletionConversational
                | ExportFormat::PromptOnlyConversational
                | ExportFormat::DpoConversational
                | ExportFormat::KtoConversational
                | ExportFormat::ImplicitPreferenceConversational
        )
    }

    /// Whether LLaMA-Factory has a `dataset_info.json` entry for the format.
    pub fn has_dataset_info(self) -> bool {
        dataset_info::entry(self, "").is_some()
    }

    /// The format's own columns (without `id` and kept columns).
    fn own_columns(self, rule: TurnRule) -> Vec<Column> {
        if self.is_preference() {
            preference::columns(self, rule)
        } else {
            sft::columns(self, rule)
        }
    }

    /// Every column written with options `o`, in order (not for `records`).
    fn columns(self, o: &ExportOptions) -> Vec<Column> {
        let mut c = self.own_columns(self.turn_rule(o));
        if self.has_id() && o.include_id {
            c.push(Column::new("id", Kind::Str));
        }
        c.extend(o.keep_columns.iter().map(KeepColumn::column));
        c
    }

    /// The Arrow schema of this format's Parquet output with default options (JSONL
    /// uses the same field names).
    pub fn schema(self) -> SchemaRef {
        self.schema_with(&ExportOptions::default())
    }

    /// The Arrow schema of this format's Parquet output with options `o`.
    pub fn schema_with(self, o: &ExportOptions) -> SchemaRef {
        match self {
            ExportFormat::Records => record_schema(),
            f => schema_of(&f.columns(o)),
        }
    }
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
    columns: Vec<Column>,
    rule: TurnRule,
    options: ExportOptions,
}

/// A record that could not be exported: `(record id, reason)`.
pub type Skipped = (String, String);

impl Exporter {
    /// Start an export to `path` (`.parquet` or `.jsonl`) with default options.
    pub fn create(path: &Path, format: ExportFormat) -> Result<Exporter, StoreError> {
        Exporter::create_with(path, format, &ExportOptions::default())
    }

    /// Start an export with options; options the format cannot take (see
    /// [`ExportFormat::check`]) are an error naming the file.
    pub fn create_with(
        path: &Path,
        format: ExportFormat,
        options: &ExportOptions,
    ) -> Result<Exporter, StoreError> {
        let problems = format.check(options);
        if !problems.is_empty() {
            return Err(StoreError::Content {
                path: path.to_path_buf(),
                message: format!(
                    "export options do not fit format `{}`: {}",
                    format.name(),
                    problems.join("; ")
                ),
            });
        }
        let container = Container::from_path(path)?;
        let sink = match container {
            Container::Parquet => Sink::Parquet(Box::new(AtomicParquetWriter::create(
                path,
                format.schema_with(options),
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
            columns: match format {
                ExportFormat::Records => Vec::new(),
                f => f.columns(options),
            },
            rule: format.turn_rule(options),
            options: options.clone(),
        })
    }

    /// The export format.
    pub fn format(&self) -> ExportFormat {
        self.format
    }

    /// Rows written so far (a `kto` record writes two).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The rows of one record with `id` and kept columns, or why it cannot be written.
    fn record_rows<'a>(&self, r: &'a Record) -> Result<Vec<Row<'a>>, String> {
        let own = if self.format.is_preference() {
            preference::rows(self.format, r, self.rule)?
        } else {
            vec![sft::row(self.format, r, self.rule)?]
        };
        let with_id = self.format.has_id() && self.options.include_id;
        Ok(own
            .into_iter()
            .map(|(mut row, answer): (Row<'a>, Answer)| {
                if with_id {
                    row.push(Cell::str(&r.id));
                }
                row.extend(self.options.keep_columns.iter().map(|k| k.cell(r, answer)));
                row
            })
            .collect())
    }

    /// Write records; returns those the format cannot express, with the reason, for the
    /// caller to log as failures. The others are written in input order.
    pub fn write(&mut self, records: &[Record]) -> Result<Vec<Skipped>, StoreError> {
        let mut skipped = Vec::new();
        let written = if self.format == ExportFormat::Records {
            self.write_records(records, &mut skipped)?
        } else {
            match &self.sink {
                Sink::Parquet(_) => {
                    let mut b = BatchBuilder::new(&self.columns, records.len());
                    let mut n = 0;
                    for r in records {
                        match self.record_rows(r) {
                            Ok(rows) => {
                                for row in rows {
                                    b.push(row).map_err(|e| e.in_file(&self.path))?;
                                    n += 1;
                                }
                            }
                            Err(e) => skipped.push((r.id.clone(), e)),
                        }
                    }
                    let batch = b.finish().map_err(|e| e.in_file(&self.path))?;
                    let Sink::Parquet(w) = &mut self.sink else {
                        unreachable!()
                    };
                    w.write(&batch)?;
                    n
                }
                Sink::Jsonl { .. } => {
                    let mut n = 0;
                    let mut lines = Vec::with_capacity(1 << 12);
                    for r in records {
                        lines.clear();
                        let res = self.record_rows(r).and_then(|rows| {
                            for row in &rows {
                                columns::write_json_row(&self.columns, row, &mut lines)?;
                                lines.push(b'\n');
                            }
                            Ok(rows.len())
                        });
                        match res {
                            Ok(k) => {
                                let Sink::Jsonl { out, .. } = &mut self.sink else {
                                    unreachable!()
                                };
                                out.write_all(&lines).map_err(io_err(&self.path))?;
                                n += k;
                            }
                            Err(reason) => skipped.push((r.id.clone(), reason)),
                        }
                    }
                    n
                }
            }
        };
        self.rows += written as u64;
        Ok(skipped)
    }

    /// `records`: the internal schema, through its own batch and JSON writers.
    fn write_records(
        &mut self,
        records: &[Record],
        skipped: &mut Vec<Skipped>,
    ) -> Result<usize, StoreError> {
        match &mut self.sink {
            Sink::Parquet(w) => {
                let batch = records_to_batch(records).map_err(|e| e.in_file(&self.path))?;
                w.write(&batch)?;
                Ok(batch.num_rows())
            }
            Sink::Jsonl { out, buf, .. } => {
                let mut n = 0;
                for r in records {
                    buf.clear();
                    buf.push(b'{');
                    match jsonl::record_json(r, buf, &mut true) {
                        Ok(()) => {
                            buf.extend_from_slice(b"}\n");
                            out.write_all(buf).map_err(io_err(&self.path))?;
                            n += 1;
                        }
                        Err(reason) => skipped.push((r.id.clone(), reason)),
                    }
                }
                Ok(n)
            }
        }
    }

    /// Complete the file and move it into place atomically, then write its
    /// `dataset_info.json` entry when asked. Returns the rows written.
    pub fn finish(self) -> Result<u64, StoreError> {
        let rows = match self.sink {
            Sink::Parquet(w) => w.finish()?,
            Sink::Jsonl { temp, out, .. } => {
                let file = out
                    .into_inner()
                    .map_err(|e| io_err(&self.path)(e.into_error()))?;
                temp.commit(file)?;
                self.rows
            }
        };
        if self.format.wants_dataset_info(&self.options) {
            dataset_info::write_entry(&self.path, self.format, self.rule.tools)?;
        }
        Ok(rows)
    }
}
