//! retort's internal Arrow schemas for [`Record`], [`Failure`] and [`Rejection`], and
//! exact conversions between those structs and Arrow record batches.
//!
//! The record schema is documented column by column in `docs/formats.md`. Maps
//! (`scores`, `labels`) are stored as `list<struct<key, value>>` rather than Arrow's
//! `map` type because Hugging Face `datasets` has no feature type for Arrow maps, while
//! a list of structs loads everywhere (pyarrow, pandas, polars, duckdb, `datasets`).
//!
//! Size: ~765 lines: the Arrow schemas and both directions of conversion for `Record`,
//! `Failure` and `Rejection` must mirror each other field by field; one file keeps each
//! schema beside its two conversions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, Float32Array, Float64Array, RecordBatch, StringArray, StructArray,
    UInt16Array, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use retort_core::{Candidate, Failure, Pair, Provenance, Record, Rejection};

use crate::build::{
    list_item, list_of, no_nulls, opt_str, range, struct_cols, struct_fields, utf8, Cols,
    ListOffsets, MessageCols, MessageList, StrCol, StrPairList, Validity,
};
use crate::StoreError;

/// Version tag stored in the schema metadata under [`SCHEMA_VERSION_KEY`]; bump it when
/// a column changes meaning or type.
pub const RECORD_SCHEMA_VERSION: &str = "retort.record.v1";
/// Schema metadata key carrying the schema version.
pub const SCHEMA_VERSION_KEY: &str = "retort.schema";

/// `struct<role, content, reasoning?, tool_calls: list<struct<id?, name, arguments>>,
/// tool_call_id?, name?>`: one chat turn of the internal record schema. `reasoning` is
/// an assistant turn's trace, `tool_calls` the functions it calls (arguments as JSON
/// text), `tool_call_id`/`name` mark a `tool` turn's result; null or empty elsewhere.
pub fn record_message_struct() -> DataType {
    DataType::Struct(Fields::from(vec![
        utf8("role", false),
        utf8("content", false),
        utf8("reasoning", true),
        Field::new("tool_calls", list_of(tool_call_struct()), false),
        utf8("tool_call_id", true),
        utf8("name", true),
    ]))
}

/// `struct<id: utf8?, name: utf8, arguments: utf8>`: one function call of the internal
/// record schema.
pub fn tool_call_struct() -> DataType {
    DataType::Struct(Fields::from(vec![
        utf8("id", true),
        utf8("name", false),
        utf8("arguments", false),
    ]))
}

/// `list<struct<role, content, reasoning>>`: the internal record schema's chats
/// (`messages`, `pair.chosen`, `pair.rejected`).
pub fn record_messages_type() -> DataType {
    list_of(record_message_struct())
}

/// `struct<role: utf8, content: utf8>`: one chat turn as trainers read it.
pub fn message_struct() -> DataType {
    DataType::Struct(Fields::from(vec![
        utf8("role", false),
        utf8("content", false),
    ]))
}

/// `list<struct<role, content>>`: a chat, as TRL and the OpenAI format expect.
pub fn messages_type() -> DataType {
    list_of(message_struct())
}

fn kv_type(value: DataType) -> DataType {
    list_of(DataType::Struct(Fields::from(vec![
        utf8("key", false),
        Field::new("value", value, false),
    ])))
}

fn candidate_type() -> DataType {
    list_of(DataType::Struct(Fields::from(vec![
        utf8("teacher", false),
        utf8("model", false),
        Field::new("sample", DataType::UInt32, false),
        utf8("content", false),
        Field::new("score", DataType::Float64, true),
        utf8("rationale", true),
        utf8("reasoning", true),
    ])))
}

fn pair_fields() -> Fields {
    Fields::from(vec![
        Field::new("chosen", record_messages_type(), false),
        Field::new("rejected", record_messages_type(), false),
        utf8("chosen_model", false),
        utf8("rejected_model", false),
        Field::new("chosen_score", DataType::Float64, false),
        Field::new("rejected_score", DataType::Float64, false),
        Field::new("margin", DataType::Float64, false),
        utf8("rationale", true),
    ])
}

/// The Arrow schema of a [`Record`] (stable; see `docs/formats.md`).
pub fn record_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let fields = vec![
            utf8("id", false),
            utf8("instruction", true),
            utf8("input", true),
            utf8("output", true),
            Field::new("messages", record_messages_type(), false),
            // The tool definitions as one JSON array text (null when none): their
            // shapes differ per tool, which no fixed Arrow struct can hold.
            utf8("tools", true),
            Field::new("candidates", candidate_type(), false),
            Field::new("pair", DataType::Struct(pair_fields()), true),
            Field::new("scores", kv_type(DataType::Float64), false),
            Field::new("labels", kv_type(DataType::Utf8), false),
            Field::new("embedding", list_of(DataType::Float32), true),
            Field::new("cluster", DataType::UInt32, true),
            utf8("step", false),
            utf8("teacher", true),
            utf8("template", true),
            Field::new("parents", list_of(DataType::Utf8), false),
            Field::new("seeds", list_of(DataType::Utf8), false),
        ];
        Arc::new(Schema::new_with_metadata(
            fields,
            HashMap::from([(
                SCHEMA_VERSION_KEY.to_string(),
                RECORD_SCHEMA_VERSION.to_string(),
            )]),
        ))
    })
    .clone()
}

/// Build the column of the named field of `schema` (panics on an unknown name: only
/// called with the crate's own schemas).
fn field_type(schema: &Schema, name: &str) -> DataType {
    schema
        .field_with_name(name)
        .unwrap_or_else(|_| panic!("retort-store internal: no field {name}"))
        .data_type()
        .clone()
}

/// A record's tool definitions as the JSON array text stored in `tools` and written by
/// exports (`None` when it has none).
pub(crate) fn tools_json(tools: &[serde_json::Value]) -> Option<String> {
    (!tools.is_empty()).then(|| serde_json::Value::Array(tools.to_vec()).to_string())
}

/// The `tools` column's text back as tool definitions.
fn parse_tools(text: &str, row: usize) -> Result<Vec<serde_json::Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Array(tools)) => Ok(tools),
        Ok(_) => Err(StoreError::Schema(format!(
            "column `tools` in row {row} is not a JSON array of tool definitions"
        ))),
        Err(e) => Err(StoreError::Schema(format!(
            "column `tools` in row {row} is not valid JSON ({e})"
        ))),
    }
}

/// Convert records to one batch of [`record_schema`].
///
/// Fails only when a column would exceed Arrow's 2 GiB-per-batch offset limit; write
/// fewer records per batch then.
pub fn records_to_batch(records: &[Record]) -> Result<RecordBatch, StoreError> {
    let schema = record_schema();
    let n = records.len();
    let mut id = StrCol::new("id", n);
    let mut instruction = StrCol::new("instruction", n);
    let mut input = StrCol::new("input", n);
    let mut output = StrCol::new("output", n);
    let mut messages = MessageList::new("messages", n);
    let mut tools = StrCol::new("tools", n);
    let mut cands = CandidateCol::new(n);
    let mut pair = PairCol::new(n);
    let mut scores_off = ListOffsets::new("scores", n);
    let mut score_keys = StrCol::new("scores", n);
    let mut score_vals: Vec<f64> = Vec::new();
    let mut labels = StrPairList::new("labels", n);
    let mut emb_off = ListOffsets::new("embedding", n);
    let mut emb_vals: Vec<f32> = Vec::new();
    let mut cluster: Vec<Option<u32>> = Vec::with_capacity(n);
    let mut step = StrCol::new("step", n);
    let mut teacher = StrCol::new("teacher", n);
    let mut template = StrCol::new("template", n);
    let mut parents_off = ListOffsets::new("parents", n);
    let mut parents = StrCol::new("parents", n);
    let mut seeds_off = ListOffsets::new("seeds", n);
    let mut seeds = StrCol::new("seeds", n);

    for r in records {
        id.push(&r.id)?;
        instruction.push_opt(r.instruction.as_deref())?;
        input.push_opt(r.input.as_deref())?;
        output.push_opt(r.output.as_deref())?;
        messages.push_messages(&r.messages)?;
        tools.push_opt(tools_json(&r.tools).as_deref())?;
        cands.push(&r.candidates)?;
        pair.push(r.pair.as_ref())?;
        for (k, v) in &r.scores {
            score_keys.push(k)?;
            score_vals.push(*v);
        }
        scores_off.push(score_vals.len())?;
        for (k, v) in &r.labels {
            labels.push_item(k, v)?;
        }
        labels.close()?;
        match &r.embedding {
            Some(e) => {
                emb_vals.extend_from_slice(e);
                emb_off.push(emb_vals.len())?;
            }
            None => emb_off.push_null(),
        }
        cluster.push(r.cluster);
        let p = &r.provenance;
        step.push(&p.step)?;
        teacher.push_opt(p.teacher.as_deref())?;
        template.push_opt(p.template.as_deref())?;
        for s in &p.parents {
            parents.push(s)?;
        }
        parents_off.push(parents.len())?;
        for s in &p.seeds {
            seeds.push(s)?;
        }
        seeds_off.push(seeds.len())?;
    }

    let scores_t = field_type(&schema, "scores");
    let scores_item = list_item(&scores_t);
    let scores_struct = StructArray::try_new(
        struct_fields(scores_item.data_type()),
        vec![
            score_keys.finish(),
            Arc::new(Float64Array::from(score_vals)),
        ],
        None,
    )
    .map_err(|e| StoreError::Schema(e.to_string()))?;
    let emb_item = list_item(&field_type(&schema, "embedding"));
    let str_item = list_item(&field_type(&schema, "parents"));

    let columns: Vec<ArrayRef> = vec![
        id.finish(),
        instruction.finish(),
        input.finish(),
        output.finish(),
        messages.finish(&field_type(&schema, "messages"))?,
        tools.finish(),
        cands.finish(&field_type(&schema, "candidates"))?,
        pair.finish()?,
        scores_off.finish(scores_item, Arc::new(scores_struct))?,
        labels.finish(&field_type(&schema, "labels"))?,
        emb_off.finish(emb_item, Arc::new(Float32Array::from(emb_vals)))?,
        Arc::new(UInt32Array::from(cluster)),
        step.finish(),
        teacher.finish(),
        template.finish(),
        parents_off.finish(str_item.clone(), parents.finish())?,
        seeds_off.finish(str_item, seeds.finish())?,
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| StoreError::Schema(e.to_string()))
}

struct CandidateCol {
    offsets: ListOffsets,
    teacher: StrCol,
    model: StrCol,
    sample: Vec<u32>,
    content: StrCol,
    score: Vec<Option<f64>>,
    rationale: StrCol,
    reasoning: StrCol,
}

impl CandidateCol {
    fn new(n: usize) -> Self {
        CandidateCol {
            offsets: ListOffsets::new("candidates", n),
            teacher: StrCol::new("candidates", 0),
            model: StrCol::new("candidates", 0),
            sample: Vec::new(),
            content: StrCol::new("candidates", 0),
            score: Vec::new(),
            rationale: StrCol::new("candidates", 0),
            reasoning: StrCol::new("candidates", 0),
        }
    }
    fn push(&mut self, cs: &[Candidate]) -> Result<(), StoreError> {
        for c in cs {
            self.teacher.push(&c.teacher)?;
            self.model.push(&c.model)?;
            self.sample.push(c.sample);
            self.content.push(&c.content)?;
            self.score.push(c.score);
            self.rationale.push_opt(c.rationale.as_deref())?;
            self.reasoning.push_opt(c.reasoning.as_deref())?;
        }
        self.offsets.push(self.sample.len())
    }
    fn finish(self, t: &DataType) -> Result<ArrayRef, StoreError> {
        let item = list_item(t);
        let s = StructArray::try_new(
            struct_fields(item.data_type()),
            vec![
                self.teacher.finish(),
                self.model.finish(),
                Arc::new(UInt32Array::from(self.sample)),
                self.content.finish(),
                Arc::new(Float64Array::from(self.score)),
                self.rationale.finish(),
                self.reasoning.finish(),
            ],
            None,
        )
        .map_err(|e| StoreError::Schema(e.to_string()))?;
        self.offsets.finish(item, Arc::new(s))
    }
}

struct PairCol {
    validity: Validity,
    chosen: MessageList,
    rejected: MessageList,
    chosen_model: StrCol,
    rejected_model: StrCol,
    chosen_score: Vec<f64>,
    rejected_score: Vec<f64>,
    margin: Vec<f64>,
    rationale: StrCol,
}

impl PairCol {
    fn new(n: usize) -> Self {
        PairCol {
            validity: Validity::new(),
            chosen: MessageList::new("pair.chosen", n),
            rejected: MessageList::new("pair.rejected", n),
            chosen_model: StrCol::new("pair.chosen_model", n),
            rejected_model: StrCol::new("pair.rejected_model", n),
            chosen_score: Vec::with_capacity(n),
            rejected_score: Vec::with_capacity(n),
            margin: Vec::with_capacity(n),
            rationale: StrCol::new("pair.rationale", n),
        }
    }
    fn push(&mut self, p: Option<&Pair>) -> Result<(), StoreError> {
        match p {
            Some(p) => {
                self.validity.push(true);
                self.chosen.push_messages(&p.chosen)?;
                self.rejected.push_messages(&p.rejected)?;
                self.chosen_model.push(&p.chosen_model)?;
                self.rejected_model.push(&p.rejected_model)?;
                self.chosen_score.push(p.chosen_score);
                self.rejected_score.push(p.rejected_score);
                self.margin.push(p.margin);
                self.rationale.push_opt(p.rationale.as_deref())?;
            }
            None => {
                // Arrow keeps child slots under a null struct; they are masked by the
                // struct's validity and never read back.
                self.validity.push(false);
                self.chosen.push_messages(&[])?;
                self.rejected.push_messages(&[])?;
                self.chosen_model.push("")?;
                self.rejected_model.push("")?;
                self.chosen_score.push(0.0);
                self.rejected_score.push(0.0);
                self.margin.push(0.0);
                self.rationale.push_opt(None)?;
            }
        }
        Ok(())
    }
    fn finish(self) -> Result<ArrayRef, StoreError> {
        let s = StructArray::try_new(
            pair_fields(),
            vec![
                self.chosen.finish(&record_messages_type())?,
                self.rejected.finish(&record_messages_type())?,
                self.chosen_model.finish(),
                self.rejected_model.finish(),
                Arc::new(Float64Array::from(self.chosen_score)),
                Arc::new(Float64Array::from(self.rejected_score)),
                Arc::new(Float64Array::from(self.margin)),
                self.rationale.finish(),
            ],
            self.validity.finish(),
        )
        .map_err(|e| StoreError::Schema(format!("column `pair`: {e}")))?;
        Ok(Arc::new(s))
    }
}

fn cols<'a>(batch: &'a RecordBatch, what: &'static str) -> Cols<'a> {
    Cols {
        arrays: batch.columns(),
        fields: batch.schema_ref().fields(),
        what,
    }
}

/// Fail when a column that retort never writes nulls into has some: reading it would
/// otherwise turn a null into an empty string silently.
/// A `list<struct<x: utf8, y: utf8>>` column split into its parts.
struct PairList<'a> {
    list: &'a arrow::array::ListArray,
    a: &'a StringArray,
    b: &'a StringArray,
}

fn str_pair_list<'a>(
    c: &Cols<'a>,
    name: &'static str,
    a: &str,
    b: &str,
) -> Result<PairList<'a>, StoreError> {
    let list = c.list(name)?;
    let items = list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| StoreError::Schema(format!("column `{name}` is not a list of structs")))?;
    let sc = struct_cols(items, name);
    let (a_arr, b_arr) = (sc.str(a)?, sc.str(b)?);
    no_nulls(a_arr, &format!("{name}.{a}"))?;
    no_nulls(b_arr, &format!("{name}.{b}"))?;
    no_nulls(items, name)?;
    Ok(PairList {
        list,
        a: a_arr,
        b: b_arr,
    })
}

/// Convert a batch of [`record_schema`] back to records (columns are found by name, so
/// column order does not matter).
pub fn batch_to_records(batch: &RecordBatch) -> Result<Vec<Record>, StoreError> {
    let c = cols(batch, "records");
    let id = c.str("id")?;
    no_nulls(id, "id")?;
    let instruction = c.str("instruction")?;
    let input = c.str("input")?;
    let output = c.str("output")?;
    let messages = MessageCols::read(&c, "messages")?;
    no_nulls(messages.list, "messages")?;
    // Files written before tool definitions were kept have no `tools` column.
    let tools = match c.get("tools") {
        Ok(_) => Some(c.str("tools")?),
        Err(_) => None,
    };

    let cand_list = c.list("candidates")?;
    no_nulls(cand_list, "candidates")?;
    let cand_items = cand_list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| StoreError::Schema("column `candidates` is not a list of structs".into()))?;
    let cc = struct_cols(cand_items, "records");
    let (c_teacher, c_model, c_sample, c_content, c_score, c_rat) = (
        cc.str("teacher")?,
        cc.str("model")?,
        cc.u32("sample")?,
        cc.str("content")?,
        cc.f64("score")?,
        cc.str("rationale")?,
    );
    // Files written before candidates kept reasoning have no such field.
    let c_reasoning = match cc.get("reasoning") {
        Ok(_) => Some(cc.str("reasoning")?),
        Err(_) => None,
    };
    for (a, n) in [
        (c_teacher as &dyn Array, "candidates.teacher"),
        (c_model, "candidates.model"),
        (c_sample, "candidates.sample"),
        (c_content, "candidates.content"),
    ] {
        no_nulls(a, n)?;
    }

    let pair = c.strukt("pair")?;
    let pc = struct_cols(pair, "records");
    let p_chosen = MessageCols::read(&pc, "chosen")?;
    let p_rejected = MessageCols::read(&pc, "rejected")?;
    let (p_cm, p_rm, p_cs, p_rs, p_margin, p_rat) = (
        pc.str("chosen_model")?,
        pc.str("rejected_model")?,
        pc.f64("chosen_score")?,
        pc.f64("rejected_score")?,
        pc.f64("margin")?,
        pc.str("rationale")?,
    );

    let scores_list = c.list("scores")?;
    no_nulls(scores_list, "scores")?;
    let scores_items = scores_list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| StoreError::Schema("column `scores` is not a list of structs".into()))?;
    let sc = struct_cols(scores_items, "records");
    let (s_key, s_val) = (sc.str("key")?, sc.f64("value")?);
    no_nulls(s_key, "scores.key")?;
    no_nulls(s_val, "scores.value")?;
    let labels = str_pair_list(&c, "labels", "key", "value")?;
    no_nulls(labels.list, "labels")?;

    let emb_list = c.list("embedding")?;
    let emb_vals = emb_list
        .values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or_else(|| StoreError::Schema("column `embedding` is not a list of float32".into()))?;
    no_nulls(emb_vals, "embedding.item")?;
    let cluster = c.u32("cluster")?;
    let step = c.str("step")?;
    no_nulls(step, "step")?;
    let teacher = c.str("teacher")?;
    let template = c.str("template")?;
    let parents = c.list("parents")?;
    let seeds = c.list("seeds")?;
    no_nulls(parents, "parents")?;
    no_nulls(seeds, "seeds")?;
    let parents_v = string_values(parents, "parents")?;
    let seeds_v = string_values(seeds, "seeds")?;

    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let candidates = range(cand_list, i)
            .map(|j| Candidate {
                teacher: c_teacher.value(j).to_string(),
                model: c_model.value(j).to_string(),
                sample: c_sample.value(j),
                content: c_content.value(j).to_string(),
                score: (!c_score.is_null(j)).then(|| c_score.value(j)),
                rationale: opt_str(c_rat, j).map(str::to_string),
                reasoning: c_reasoning.and_then(|a| opt_str(a, j)).map(str::to_string),
            })
            .collect();
        let pair = if pair.is_null(i) {
            None
        } else {
            for (a, n) in [
                (p_cm as &dyn Array, "pair.chosen_model"),
                (p_rm, "pair.rejected_model"),
                (p_cs, "pair.chosen_score"),
                (p_rs, "pair.rejected_score"),
                (p_margin, "pair.margin"),
            ] {
                if a.is_null(i) {
                    return Err(StoreError::Schema(format!(
                        "column `{n}` is null in row {i} although `pair` is set"
                    )));
                }
            }
            Some(Pair {
                chosen: p_chosen.messages(i),
                rejected: p_rejected.messages(i),
                chosen_model: p_cm.value(i).to_string(),
                rejected_model: p_rm.value(i).to_string(),
                chosen_score: p_cs.value(i),
                rejected_score: p_rs.value(i),
                margin: p_margin.value(i),
                rationale: opt_str(p_rat, i).map(str::to_string),
            })
        };
        let scores: BTreeMap<String, f64> = range(scores_list, i)
            .map(|j| (s_key.value(j).to_string(), s_val.value(j)))
            .collect();
        let labels: BTreeMap<String, String> = range(labels.list, i)
            .map(|j| (labels.a.value(j).to_string(), labels.b.value(j).to_string()))
            .collect();
        let embedding = if emb_list.is_null(i) {
            None
        } else {
            let r = range(emb_list, i);
            Some(emb_vals.values()[r].to_vec())
        };
        out.push(Record {
            id: id.value(i).to_string(),
            instruction: opt_str(instruction, i).map(str::to_string),
            input: opt_str(input, i).map(str::to_string),
            output: opt_str(output, i).map(str::to_string),
            messages: messages.messages(i),
            tools: match tools.and_then(|t| opt_str(t, i)) {
                Some(text) => parse_tools(text, i)?,
                None => Vec::new(),
            },
            candidates,
            pair,
            scores,
            labels,
            embedding,
            cluster: (!cluster.is_null(i)).then(|| cluster.value(i)),
            provenance: Provenance {
                step: step.value(i).to_string(),
                teacher: opt_str(teacher, i).map(str::to_string),
                template: opt_str(template, i).map(str::to_string),
                parents: range(parents, i)
                    .map(|j| parents_v.value(j).to_string())
                    .collect(),
                seeds: range(seeds, i)
                    .map(|j| seeds_v.value(j).to_string())
                    .collect(),
            },
        });
    }
    Ok(out)
}

fn string_values<'a>(
    l: &'a arrow::array::ListArray,
    name: &str,
) -> Result<&'a StringArray, StoreError> {
    let v = l
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| StoreError::Schema(format!("column `{name}` is not a list of utf8")))?;
    no_nulls(v, &format!("{name}.item"))?;
    Ok(v)
}

// ---------------------------------------------------------------- failures

/// The Arrow schema of a [`Failure`] (`failures.parquet`).
pub fn failure_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            utf8("step", false),
            utf8("record_id", false),
            utf8("class", false),
            Field::new("status", DataType::UInt16, true),
            utf8("message", false),
            utf8("raw", false),
        ]))
    })
    .clone()
}

/// Convert failures to one batch of [`failure_schema`].
pub fn failures_to_batch(failures: &[Failure]) -> Result<RecordBatch, StoreError> {
    let n = failures.len();
    let mut cols = [
        StrCol::new("step", n),
        StrCol::new("record_id", n),
        StrCol::new("class", n),
        StrCol::new("message", n),
        StrCol::new("raw", n),
    ];
    let mut status = Vec::with_capacity(n);
    for f in failures {
        cols[0].push(&f.step)?;
        cols[1].push(&f.record_id)?;
        cols[2].push(&f.class)?;
        cols[3].push(&f.message)?;
        cols[4].push(&f.raw)?;
        status.push(f.status);
    }
    let [step, record_id, class, message, raw] = cols;
    RecordBatch::try_new(
        failure_schema(),
        vec![
            step.finish(),
            record_id.finish(),
            class.finish(),
            Arc::new(UInt16Array::from(status)),
            message.finish(),
            raw.finish(),
        ],
    )
    .map_err(|e| StoreError::Schema(e.to_string()))
}

/// Convert a batch of [`failure_schema`] back to failures.
pub fn batch_to_failures(batch: &RecordBatch) -> Result<Vec<Failure>, StoreError> {
    let c = cols(batch, "failures");
    let names = ["step", "record_id", "class", "message", "raw"];
    let mut s = Vec::with_capacity(5);
    for n in names {
        let a = c.str(n)?;
        no_nulls(a, n)?;
        s.push(a);
    }
    let status = c.u16("status")?;
    Ok((0..batch.num_rows())
        .map(|i| Failure {
            step: s[0].value(i).to_string(),
            record_id: s[1].value(i).to_string(),
            class: s[2].value(i).to_string(),
            status: (!status.is_null(i)).then(|| status.value(i)),
            message: s[3].value(i).to_string(),
            raw: s[4].value(i).to_string(),
        })
        .collect())
}

// ---------------------------------------------------------------- rejections

/// The Arrow schema of a [`Rejection`] (`rejections.parquet`).
pub fn rejection_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            utf8("step", false),
            utf8("record_id", false),
            utf8("reason", false),
            utf8("detail", false),
            utf8("text", false),
        ]))
    })
    .clone()
}

/// Convert rejections to one batch of [`rejection_schema`].
pub fn rejections_to_batch(rejections: &[Rejection]) -> Result<RecordBatch, StoreError> {
    let n = rejections.len();
    let mut cols = [
        StrCol::new("step", n),
        StrCol::new("record_id", n),
        StrCol::new("reason", n),
        StrCol::new("detail", n),
        StrCol::new("text", n),
    ];
    for r in rejections {
        cols[0].push(&r.step)?;
        cols[1].push(&r.record_id)?;
        cols[2].push(&r.reason)?;
        cols[3].push(&r.detail)?;
        cols[4].push(&r.text)?;
    }
    RecordBatch::try_new(
        rejection_schema(),
        cols.into_iter().map(StrCol::finish).collect(),
    )
    .map_err(|e| StoreError::Schema(e.to_string()))
}

/// Convert a batch of [`rejection_schema`] back to rejections.
pub fn batch_to_rejections(batch: &RecordBatch) -> Result<Vec<Rejection>, StoreError> {
    let c = cols(batch, "rejections");
    let names = ["step", "record_id", "reason", "detail", "text"];
    let mut s = Vec::with_capacity(5);
    for n in names {
        let a = c.str(n)?;
        no_nulls(a, n)?;
        s.push(a);
    }
    Ok((0..batch.num_rows())
        .map(|i| Rejection {
            step: s[0].value(i).to_string(),
            record_id: s[1].value(i).to_string(),
            reason: s[2].value(i).to_string(),
            detail: s[3].value(i).to_string(),
            text: s[4].value(i).to_string(),
        })
        .collect())
}
