//! The row model every format but `records` is written through: a format turns a record
//! into rows of [`Cell`]s under its [`Column`]s, and this module alone turns those rows
//! into Arrow arrays (Parquet) or JSON objects (JSONL). Keeping one writer per container
//! is what keeps the two containers of a format from drifting apart: a column is typed
//! once, and both writers read that type.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder, Float64Array, StructArray};
use arrow::array::{RecordBatch, UInt32Array};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

use super::jsonl::{jf64, jkey, jopt, js};
use crate::build::{list_item, list_of, struct_fields, utf8, ListOffsets, StrCol, Validity};
use crate::StoreError;
use retort_core::ToolCall;

/// The field names of one kind of turn list: `role`/`content` (messages) or
/// `from`/`value` (ShareGPT), plus the optional reasoning field and the OpenAI tool
/// fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TurnShape {
    pub(crate) who: &'static str,
    pub(crate) text: &'static str,
    /// Name of the nullable reasoning field, when the export writes one.
    pub(crate) reasoning: Option<&'static str>,
    /// Whether turns carry `tool_calls`, `tool_call_id` and `name` (all nullable).
    pub(crate) tools: bool,
}

impl TurnShape {
    /// `list<struct<who, text[, reasoning?][, tool_calls?, tool_call_id?, name?]>>`.
    pub(crate) fn data_type(self) -> DataType {
        let mut f = vec![utf8(self.who, false), utf8(self.text, false)];
        if let Some(r) = self.reasoning {
            f.push(utf8(r, true));
        }
        if self.tools {
            f.push(Field::new(
                "tool_calls",
                list_of(openai_call_struct()),
                true,
            ));
            f.push(utf8("tool_call_id", true));
            f.push(utf8("name", true));
        }
        list_of(DataType::Struct(Fields::from(f)))
    }
}

/// `struct<id?, type, function: struct<name, arguments>>`: a tool call as the OpenAI
/// chat format and HF chat templates spell it; `arguments` is the JSON text.
fn openai_call_struct() -> DataType {
    DataType::Struct(Fields::from(vec![
        utf8("id", true),
        utf8("type", false),
        Field::new(
            "function",
            DataType::Struct(Fields::from(vec![
                utf8("name", false),
                utf8("arguments", false),
            ])),
            false,
        ),
    ]))
}

/// The Arrow type of an export column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// utf8, not null.
    Str,
    /// utf8, nullable.
    OptStr,
    /// float64, not null.
    F64,
    /// float64, nullable.
    OptF64,
    /// uint32, nullable.
    OptU32,
    /// bool, not null.
    Bool,
    /// A list of turns, not null.
    Turns(TurnShape),
}

/// One column of an export.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Column {
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: Kind,
}

impl Column {
    pub(crate) const fn new(name: &'static str, kind: Kind) -> Column {
        Column {
            name: Cow::Borrowed(name),
            kind,
        }
    }

    fn field(&self) -> Field {
        let (t, nullable) = match self.kind {
            Kind::Str => (DataType::Utf8, false),
            Kind::OptStr => (DataType::Utf8, true),
            Kind::F64 => (DataType::Float64, false),
            Kind::OptF64 => (DataType::Float64, true),
            Kind::OptU32 => (DataType::UInt32, true),
            Kind::Bool => (DataType::Boolean, false),
            Kind::Turns(s) => (s.data_type(), false),
        };
        Field::new(self.name.as_ref(), t, nullable)
    }

    /// The name the string builders quote in an overflow error; they need a `'static`
    /// name, and a kept column's is only known at run time.
    fn static_name(&self) -> &'static str {
        match self.name {
            Cow::Borrowed(n) => n,
            Cow::Owned(_) => "keep_columns",
        }
    }
}

/// The Arrow schema of a list of columns.
pub(crate) fn schema_of(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(Column::field).collect::<Vec<_>>(),
    ))
}

/// One chat turn as written: who, what, the reasoning when it is a separate field, and
/// its tool parts (written only by a shape with `tools`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Turn<'a> {
    pub(crate) who: Cow<'a, str>,
    pub(crate) text: Cow<'a, str>,
    pub(crate) reasoning: Option<Cow<'a, str>>,
    pub(crate) tool: ToolParts<'a>,
}

/// A turn's tool calls, or the call id and function name of a tool result.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ToolParts<'a> {
    pub(crate) calls: Cow<'a, [ToolCall]>,
    pub(crate) call_id: Option<Cow<'a, str>>,
    pub(crate) name: Option<Cow<'a, str>>,
}

/// One value of a row, matching its column's [`Kind`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Text(Option<Cow<'a, str>>),
    Num(Option<f64>),
    U32(Option<u32>),
    Bool(bool),
    Turns(Vec<Turn<'a>>),
}

impl<'a> Cell<'a> {
    pub(crate) fn str(s: &'a str) -> Cell<'a> {
        Cell::Text(Some(Cow::Borrowed(s)))
    }
    pub(crate) fn string(s: String) -> Cell<'a> {
        Cell::Text(Some(Cow::Owned(s)))
    }
    pub(crate) fn opt_str(s: Option<&'a str>) -> Cell<'a> {
        Cell::Text(s.map(Cow::Borrowed))
    }
}

/// One output row: a cell per column, in column order.
pub(crate) type Row<'a> = Vec<Cell<'a>>;

// ---------------------------------------------------------------- Parquet

enum Builder {
    Str(StrCol),
    F64(Vec<f64>, Validity),
    U32(Vec<u32>, Validity),
    Bool(BooleanBufferBuilder),
    // Boxed: a turn list is three builders, far larger than the other variants.
    Turns(Box<TurnList>),
}

/// Arrow arrays under construction for a list of columns.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
    builders: Vec<Builder>,
}

impl BatchBuilder {
    pub(crate) fn new(columns: &[Column], rows: usize) -> BatchBuilder {
        let builders = columns
            .iter()
            .map(|c| match c.kind {
                Kind::Str | Kind::OptStr => Builder::Str(StrCol::new(c.static_name(), rows)),
                Kind::F64 | Kind::OptF64 => Builder::F64(Vec::with_capacity(rows), Validity::new()),
                Kind::OptU32 => Builder::U32(Vec::with_capacity(rows), Validity::new()),
                Kind::Bool => Builder::Bool(BooleanBufferBuilder::new(rows)),
                Kind::Turns(s) => Builder::Turns(Box::new(TurnList::new(c.static_name(), s, rows))),
            })
            .collect();
        BatchBuilder {
            schema: schema_of(columns),
            columns: columns.to_vec(),
            builders,
        }
    }

    pub(crate) fn push(&mut self, row: Row<'_>) -> Result<(), StoreError> {
        debug_assert_eq!(row.len(), self.builders.len());
        for ((b, cell), col) in self.builders.iter_mut().zip(row).zip(&self.columns) {
            match (b, cell) {
                (Builder::Str(s), Cell::Text(t)) => s.push_opt(t.as_deref())?,
                (Builder::F64(v, valid), Cell::Num(x)) => {
                    v.push(x.unwrap_or(0.0));
                    valid.push(x.is_some());
                }
                (Builder::U32(v, valid), Cell::U32(x)) => {
                    v.push(x.unwrap_or(0));
                    valid.push(x.is_some());
                }
                (Builder::Bool(v), Cell::Bool(x)) => v.append(x),
                (Builder::Turns(l), Cell::Turns(turns)) => l.push(&turns)?,
                (_, cell) => {
                    return Err(StoreError::Schema(format!(
                        "retort-store internal: column `{}` ({:?}) was given {cell:?}",
                        col.name, col.kind
                    )))
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<RecordBatch, StoreError> {
        let arrays = self
            .builders
            .into_iter()
            .zip(&self.columns)
            .map(|(b, c)| -> Result<ArrayRef, StoreError> {
                Ok(match b {
                    Builder::Str(s) => s.finish(),
                    Builder::F64(v, valid) => {
                        Arc::new(Float64Array::new(ScalarBuffer::from(v), valid.finish()))
                    }
                    Builder::U32(v, valid) => {
                        Arc::new(UInt32Array::new(ScalarBuffer::from(v), valid.finish()))
                    }
                    Builder::Bool(mut v) => Arc::new(BooleanArray::new(v.finish(), None)),
                    Builder::Turns(l) => match c.kind {
                        Kind::Turns(s) => l.finish(&s.data_type())?,
                        _ => unreachable!("a turn builder is made only for a turn column"),
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(self.schema, arrays).map_err(|e| StoreError::Schema(e.to_string()))
    }
}

/// `list<struct<who, text[, reasoning][, tool fields]>>` under construction.
struct TurnList {
    offsets: ListOffsets,
    who: StrCol,
    text: StrCol,
    reasoning: Option<StrCol>,
    tools: Option<ToolCols>,
}

/// The tool fields of a turn list: `tool_calls` (null when a turn makes none),
/// `tool_call_id`, `name`.
struct ToolCols {
    calls: ListOffsets,
    id: StrCol,
    kind: StrCol,
    name: StrCol,
    arguments: StrCol,
    call_id: StrCol,
    result_name: StrCol,
}

impl TurnList {
    fn new(name: &'static str, shape: TurnShape, rows: usize) -> TurnList {
        TurnList {
            offsets: ListOffsets::new(name, rows),
            who: StrCol::new(name, rows * 2),
            text: StrCol::new(name, rows * 2),
            reasoning: shape.reasoning.map(|_| StrCol::new(name, rows * 2)),
            tools: shape.tools.then(|| ToolCols {
                calls: ListOffsets::new(name, rows * 2),
                id: StrCol::new(name, 0),
                kind: StrCol::new(name, 0),
                name: StrCol::new(name, 0),
                arguments: StrCol::new(name, 0),
                call_id: StrCol::new(name, rows * 2),
                result_name: StrCol::new(name, rows * 2),
            }),
        }
    }

    fn push(&mut self, turns: &[Turn<'_>]) -> Result<(), StoreError> {
        for t in turns {
            self.who.push(&t.who)?;
            self.text.push(&t.text)?;
            if let Some(r) = &mut self.reasoning {
                r.push_opt(t.reasoning.as_deref())?;
            }
            if let Some(c) = &mut self.tools {
                if t.tool.calls.is_empty() {
                    c.calls.push_null();
                } else {
                    for call in t.tool.calls.iter() {
                        c.id.push_opt(call.id.as_deref())?;
                        c.kind.push("function")?;
                        c.name.push(&call.name)?;
                        c.arguments.push(&call.arguments)?;
                    }
                    c.calls.push(c.name.len())?;
                }
                c.call_id.push_opt(t.tool.call_id.as_deref())?;
                c.result_name.push_opt(t.tool.name.as_deref())?;
            }
        }
        self.offsets.push(self.who.len())
    }

    fn finish(self, list_type: &DataType) -> Result<ArrayRef, StoreError> {
        let item = list_item(list_type);
        let fields = struct_fields(item.data_type());
        let mut children = vec![self.who.finish(), self.text.finish()];
        children.extend(self.reasoning.map(StrCol::finish));
        if let Some(c) = self.tools {
            let call_item = list_item(&list_of(openai_call_struct()));
            let call_fields = struct_fields(call_item.data_type());
            let function_fields = struct_fields(call_fields[2].data_type());
            let function = StructArray::try_new(
                function_fields,
                vec![c.name.finish(), c.arguments.finish()],
                None,
            )
            .map_err(|e| StoreError::Schema(e.to_string()))?;
            let calls = StructArray::try_new(
                call_fields,
                vec![c.id.finish(), c.kind.finish(), Arc::new(function)],
                None,
            )
            .map_err(|e| StoreError::Schema(e.to_string()))?;
            children.push(c.calls.finish(call_item, Arc::new(calls))?);
            children.push(c.call_id.finish());
            children.push(c.result_name.finish());
        }
        let values = StructArray::try_new(fields, children, None)
            .map_err(|e| StoreError::Schema(e.to_string()))?;
        self.offsets.finish(item, Arc::new(values))
    }
}

// ---------------------------------------------------------------- JSONL

/// One row as a JSON object (no newline), keys in column order; the error says which
/// value JSON cannot hold.
pub(crate) fn write_json_row(
    columns: &[Column],
    row: &[Cell<'_>],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut first = true;
    out.push(b'{');
    for (col, cell) in columns.iter().zip(row) {
        jkey(out, &mut first, &col.name);
        match (cell, col.kind) {
            (Cell::Text(t), _) => jopt(out, t.as_deref()),
            (Cell::Num(Some(v)), _) => jf64(out, &col.name, *v)?,
            (Cell::Num(None), _) | (Cell::U32(None), _) => out.extend_from_slice(b"null"),
            (Cell::U32(Some(v)), _) => out.extend_from_slice(v.to_string().as_bytes()),
            (Cell::Bool(b), _) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            (Cell::Turns(turns), Kind::Turns(shape)) => json_turns(out, shape, turns),
            (Cell::Turns(_), kind) => {
                unreachable!("turns given to column `{}` of kind {kind:?}", col.name)
            }
        }
    }
    out.push(b'}');
    Ok(())
}

/// `[{"who":..,"text":..[,"reasoning":..|null]},..]`. The reasoning key is on every
/// turn, `null` when there is none: JSON readers infer each column's struct on its own,
/// and a `chosen` whose turns had the key next to a `rejected` whose turns lacked it
/// would be two types, which TRL's `extract_prompt` and `unpair_preference_dataset`
/// cannot compare or concatenate.
fn json_turns(out: &mut Vec<u8>, shape: TurnShape, turns: &[Turn<'_>]) {
    out.push(b'[');
    for (i, t) in turns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        js(out, shape.who);
        out.push(b':');
        js(out, &t.who);
        out.push(b',');
        js(out, shape.text);
        out.push(b':');
        js(out, &t.text);
        if let Some(key) = shape.reasoning {
            out.push(b',');
            js(out, key);
            out.push(b':');
            jopt(out, t.reasoning.as_deref());
        }
        if shape.tools {
            json_tool_parts(out, &t.tool);
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// `,"tool_calls":[…]|null,"tool_call_id":…,"name":…` — on every turn, null when
/// absent, for the same reason as the reasoning key.
fn json_tool_parts(out: &mut Vec<u8>, t: &ToolParts<'_>) {
    out.extend_from_slice(b",\"tool_calls\":");
    if t.calls.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'[');
        for (i, c) in t.calls.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"id\":");
            jopt(out, c.id.as_deref());
            out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            js(out, &c.name);
            out.extend_from_slice(b",\"arguments\":");
            js(out, &c.arguments);
            out.extend_from_slice(b"}}");
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"tool_call_id\":");
    jopt(out, t.call_id.as_deref());
    out.extend_from_slice(b",\"name\":");
    jopt(out, t.name.as_deref());
}
