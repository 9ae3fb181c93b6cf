//! Small hand-written Arrow column builders and readers.
//!
//! The generic arrow builders (`StructBuilder` and friends) are dynamically typed and
//! slow for nested data; these build the buffers directly, and report offset overflow
//! (more than 2 GiB of text in one batch) as an error instead of panicking.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBufferBuilder, Float64Array, ListArray, StringArray,
    StructArray, UInt16Array, UInt32Array,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use retort_core::{Message, ToolCall};

use crate::StoreError;

fn overflow(what: &str) -> StoreError {
    StoreError::Schema(format!(
        "more than 2 GiB of data in one batch of column `{what}`; write fewer records per batch"
    ))
}

/// Validity bits, allocated only once a null is seen.
pub(crate) struct Validity {
    bits: Option<BooleanBufferBuilder>,
    len: usize,
}

impl Validity {
    pub(crate) fn new() -> Self {
        Validity { bits: None, len: 0 }
    }
    pub(crate) fn push(&mut self, valid: bool) {
        if !valid && self.bits.is_none() {
            let mut b = BooleanBufferBuilder::new(self.len.max(64) * 2);
            b.append_n(self.len, true);
            self.bits = Some(b);
        }
        if let Some(b) = &mut self.bits {
            b.append(valid);
        }
        self.len += 1;
    }
    pub(crate) fn finish(self) -> Option<NullBuffer> {
        self.bits.map(|mut b| NullBuffer::new(b.finish()))
    }
}

/// A utf8 column under construction.
pub(crate) struct StrCol {
    name: &'static str,
    data: Vec<u8>,
    offsets: Vec<i32>,
    validity: Validity,
}

impl StrCol {
    pub(crate) fn new(name: &'static str, rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StrCol {
            name,
            data: Vec::with_capacity(rows * 16),
            offsets,
            validity: Validity::new(),
        }
    }
    pub(crate) fn push(&mut self, s: &str) -> Result<(), StoreError> {
        self.data.extend_from_slice(s.as_bytes());
        let end = i32::try_from(self.data.len()).map_err(|_| overflow(self.name))?;
        self.offsets.push(end);
        self.validity.push(true);
        Ok(())
    }
    pub(crate) fn push_opt(&mut self, s: Option<&str>) -> Result<(), StoreError> {
        match s {
            Some(s) => self.push(s),
            None => {
                let last = *self.offsets.last().expect("offsets start with 0");
                self.offsets.push(last);
                self.validity.push(false);
                Ok(())
            }
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }
    pub(crate) fn finish(self) -> ArrayRef {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        // SAFETY: `data` is the concatenation of `&str`s, so every offset lands on a char
        // boundary and the bytes are valid UTF-8; offsets are monotonic by construction.
        let arr = unsafe {
            StringArray::new_unchecked(offsets, Buffer::from_vec(self.data), self.validity.finish())
        };
        Arc::new(arr)
    }
}

/// Offsets (and validity) of a list column; the child values are built separately.
pub(crate) struct ListOffsets {
    name: &'static str,
    offsets: Vec<i32>,
    validity: Validity,
}

impl ListOffsets {
    pub(crate) fn new(name: &'static str, rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        ListOffsets {
            name,
            offsets,
            validity: Validity::new(),
        }
    }
    /// Close a list whose children now end at `child_len`.
    pub(crate) fn push(&mut self, child_len: usize) -> Result<(), StoreError> {
        self.offsets
            .push(i32::try_from(child_len).map_err(|_| overflow(self.name))?);
        self.validity.push(true);
        Ok(())
    }
    pub(crate) fn push_null(&mut self) {
        let last = *self.offsets.last().expect("offsets start with 0");
        self.offsets.push(last);
        self.validity.push(false);
    }
    pub(crate) fn finish(self, item: FieldRef, values: ArrayRef) -> Result<ArrayRef, StoreError> {
        let arr = ListArray::try_new(
            item,
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            values,
            self.validity.finish(),
        )
        .map_err(|e| StoreError::Schema(format!("column `{}`: {e}", self.name)))?;
        Ok(Arc::new(arr))
    }
}

/// `list<struct<a: utf8, b: utf8>>` — messages, ShareGPT turns, string maps.
pub(crate) struct StrPairList {
    offsets: ListOffsets,
    a: StrCol,
    b: StrCol,
}

impl StrPairList {
    pub(crate) fn new(name: &'static str, rows: usize) -> Self {
        StrPairList {
            offsets: ListOffsets::new(name, rows),
            a: StrCol::new(name, rows * 2),
            b: StrCol::new(name, rows * 2),
        }
    }
    pub(crate) fn push_item(&mut self, a: &str, b: &str) -> Result<(), StoreError> {
        self.a.push(a)?;
        self.b.push(b)
    }
    pub(crate) fn close(&mut self) -> Result<(), StoreError> {
        self.offsets.push(self.a.len())
    }
    /// Finish as a list whose item is a struct with the two given (non-null utf8) fields.
    pub(crate) fn finish(self, list_type: &DataType) -> Result<ArrayRef, StoreError> {
        let item = list_item(list_type);
        let fields = struct_fields(item.data_type());
        let values =
            StructArray::try_new(fields.clone(), vec![self.a.finish(), self.b.finish()], None)
                .map_err(|e| StoreError::Schema(e.to_string()))?;
        self.offsets.finish(item, Arc::new(values))
    }
}

/// `list<struct<role, content, reasoning?, tool_calls, tool_call_id?, name?>>` — the
/// internal schema's chats (messages and both sides of a pair). The optional fields are
/// null, and `tool_calls` empty, for every turn without one.
pub(crate) struct MessageList {
    offsets: ListOffsets,
    role: StrCol,
    content: StrCol,
    reasoning: StrCol,
    calls: ListOffsets,
    call_id: StrCol,
    call_name: StrCol,
    call_args: StrCol,
    tool_call_id: StrCol,
    name: StrCol,
}

impl MessageList {
    pub(crate) fn new(name: &'static str, rows: usize) -> Self {
        MessageList {
            offsets: ListOffsets::new(name, rows),
            role: StrCol::new(name, rows * 2),
            content: StrCol::new(name, rows * 2),
            reasoning: StrCol::new(name, rows * 2),
            calls: ListOffsets::new(name, rows * 2),
            call_id: StrCol::new(name, 0),
            call_name: StrCol::new(name, 0),
            call_args: StrCol::new(name, 0),
            tool_call_id: StrCol::new(name, rows * 2),
            name: StrCol::new(name, rows * 2),
        }
    }
    pub(crate) fn push_messages(&mut self, msgs: &[Message]) -> Result<(), StoreError> {
        for m in msgs {
            self.role.push(&m.role)?;
            self.content.push(&m.content)?;
            self.reasoning.push_opt(m.reasoning.as_deref())?;
            for c in &m.tool_calls {
                self.call_id.push_opt(c.id.as_deref())?;
                self.call_name.push(&c.name)?;
                self.call_args.push(&c.arguments)?;
            }
            self.calls.push(self.call_name.len())?;
            self.tool_call_id.push_opt(m.tool_call_id.as_deref())?;
            self.name.push_opt(m.name.as_deref())?;
        }
        self.offsets.push(self.role.len())
    }
    /// Finish as a list of the given message struct type (see
    /// `schema::record_message_struct`).
    pub(crate) fn finish(self, list_type: &DataType) -> Result<ArrayRef, StoreError> {
        let item = list_item(list_type);
        let fields = struct_fields(item.data_type());
        let call_list = fields
            .iter()
            .find(|f| f.name() == "tool_calls")
            .expect("retort-store internal: message struct has tool_calls")
            .data_type()
            .clone();
        let call_item = list_item(&call_list);
        let call_values = StructArray::try_new(
            struct_fields(call_item.data_type()),
            vec![
                self.call_id.finish(),
                self.call_name.finish(),
                self.call_args.finish(),
            ],
            None,
        )
        .map_err(|e| StoreError::Schema(e.to_string()))?;
        let values = StructArray::try_new(
            fields.clone(),
            vec![
                self.role.finish(),
                self.content.finish(),
                self.reasoning.finish(),
                self.calls.finish(call_item, Arc::new(call_values))?,
                self.tool_call_id.finish(),
                self.name.finish(),
            ],
            None,
        )
        .map_err(|e| StoreError::Schema(e.to_string()))?;
        self.offsets.finish(item, Arc::new(values))
    }
}

/// The item field of a list type (panics on a non-list type: only called with the
/// crate's own schema constants).
pub(crate) fn list_item(t: &DataType) -> FieldRef {
    match t {
        DataType::List(f) => f.clone(),
        other => panic!("retort-store internal: expected a list type, got {other}"),
    }
}

/// The fields of a struct type (panics like [`list_item`]).
pub(crate) fn struct_fields(t: &DataType) -> Fields {
    match t {
        DataType::Struct(f) => f.clone(),
        other => panic!("retort-store internal: expected a struct type, got {other}"),
    }
}

/// A nullable-or-not utf8 field.
pub(crate) fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// `list<item: T>` with a non-null item.
pub(crate) fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, false)))
}

// ---------------------------------------------------------------- readers

/// Borrowed access to a batch's columns by name, with errors that say which column.
pub(crate) struct Cols<'a> {
    pub(crate) arrays: &'a [ArrayRef],
    pub(crate) fields: &'a Fields,
    pub(crate) what: &'static str,
}

impl<'a> Cols<'a> {
    pub(crate) fn get(&self, name: &str) -> Result<&'a ArrayRef, StoreError> {
        match self.fields.iter().position(|f| f.name() == name) {
            Some(i) => Ok(&self.arrays[i]),
            None => Err(StoreError::Schema(format!(
                "column `{name}` is missing; this is not a retort {} file",
                self.what
            ))),
        }
    }
    pub(crate) fn str(&self, name: &str) -> Result<&'a StringArray, StoreError> {
        let a = self.get(name)?;
        a.as_string_opt::<i32>()
            .ok_or_else(|| wrong_type(name, "utf8", a.data_type()))
    }
    pub(crate) fn list(&self, name: &str) -> Result<&'a ListArray, StoreError> {
        let a = self.get(name)?;
        a.as_list_opt::<i32>()
            .ok_or_else(|| wrong_type(name, "list", a.data_type()))
    }
    pub(crate) fn strukt(&self, name: &str) -> Result<&'a StructArray, StoreError> {
        let a = self.get(name)?;
        a.as_struct_opt()
            .ok_or_else(|| wrong_type(name, "struct", a.data_type()))
    }
    pub(crate) fn f64(&self, name: &str) -> Result<&'a Float64Array, StoreError> {
        let a = self.get(name)?;
        a.as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| wrong_type(name, "float64", a.data_type()))
    }
    pub(crate) fn u32(&self, name: &str) -> Result<&'a UInt32Array, StoreError> {
        let a = self.get(name)?;
        a.as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or_else(|| wrong_type(name, "uint32", a.data_type()))
    }
    pub(crate) fn u16(&self, name: &str) -> Result<&'a UInt16Array, StoreError> {
        let a = self.get(name)?;
        a.as_any()
            .downcast_ref::<UInt16Array>()
            .ok_or_else(|| wrong_type(name, "uint16", a.data_type()))
    }
}

fn wrong_type(name: &str, want: &str, got: &DataType) -> StoreError {
    StoreError::Schema(format!("column `{name}` has type {got}, expected {want}"))
}

/// Column access for a struct array (the fields of `pair`, a list's struct items).
pub(crate) fn struct_cols<'a>(s: &'a StructArray, what: &'static str) -> Cols<'a> {
    Cols {
        arrays: s.columns(),
        fields: s.fields(),
        what,
    }
}

/// The string at `i`, or `None` when null.
#[inline]
pub(crate) fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    if a.is_null(i) {
        None
    } else {
        Some(a.value(i))
    }
}

/// The child index range of list element `i`.
#[inline]
pub(crate) fn range(l: &ListArray, i: usize) -> std::ops::Range<usize> {
    let o = l.value_offsets();
    o[i] as usize..o[i + 1] as usize
}

/// A message list column's arrays, read by field name. The fields added after the first
/// schema (`reasoning`, `tool_calls`, `tool_call_id`, `name`) are `None` for files
/// written before they existed (their turns have none).
pub(crate) struct MessageCols<'a> {
    pub(crate) list: &'a ListArray,
    role: &'a StringArray,
    content: &'a StringArray,
    reasoning: Option<&'a StringArray>,
    calls: Option<ToolCallCols<'a>>,
    tool_call_id: Option<&'a StringArray>,
    name: Option<&'a StringArray>,
}

/// The `tool_calls` list inside a message struct.
struct ToolCallCols<'a> {
    list: &'a ListArray,
    id: &'a StringArray,
    name: &'a StringArray,
    arguments: &'a StringArray,
}

impl<'a> MessageCols<'a> {
    /// The message list column `name` of `c`; nulls in role or content are an error.
    pub(crate) fn read(c: &Cols<'a>, name: &'static str) -> Result<MessageCols<'a>, StoreError> {
        let list = c.list(name)?;
        let items = list
            .values()
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| {
                StoreError::Schema(format!("column `{name}` is not a list of structs"))
            })?;
        let sc = struct_cols(items, name);
        let (role, content) = (sc.str("role")?, sc.str("content")?);
        no_nulls(role, &format!("{name}.role"))?;
        no_nulls(content, &format!("{name}.content"))?;
        no_nulls(items, name)?;
        let optional = |field: &str| match sc.get(field) {
            Ok(_) => sc.str(field).map(Some),
            Err(_) => Ok(None),
        };
        let calls = match sc.get("tool_calls") {
            Err(_) => None,
            Ok(_) => {
                let list = sc.list("tool_calls")?;
                no_nulls(list, &format!("{name}.tool_calls"))?;
                let items = list
                    .values()
                    .as_any()
                    .downcast_ref::<StructArray>()
                    .ok_or_else(|| {
                        StoreError::Schema(format!(
                            "column `{name}.tool_calls` is not a list of structs"
                        ))
                    })?;
                let cc = struct_cols(items, name);
                let (id, call_name, arguments) =
                    (cc.str("id")?, cc.str("name")?, cc.str("arguments")?);
                no_nulls(call_name, &format!("{name}.tool_calls.name"))?;
                no_nulls(arguments, &format!("{name}.tool_calls.arguments"))?;
                Some(ToolCallCols {
                    list,
                    id,
                    name: call_name,
                    arguments,
                })
            }
        };
        Ok(MessageCols {
            list,
            role,
            content,
            reasoning: optional("reasoning")?,
            calls,
            tool_call_id: optional("tool_call_id")?,
            name: optional("name")?,
        })
    }
    /// Row `i`'s messages.
    pub(crate) fn messages(&self, i: usize) -> Vec<Message> {
        let opt = |a: Option<&StringArray>, j| a.and_then(|a| opt_str(a, j)).map(str::to_string);
        range(self.list, i)
            .map(|j| Message {
                role: self.role.value(j).to_string(),
                content: self.content.value(j).to_string(),
                reasoning: opt(self.reasoning, j),
                tool_calls: self
                    .calls
                    .as_ref()
                    .map(|c| {
                        range(c.list, j)
                            .map(|k| ToolCall {
                                id: opt_str(c.id, k).map(str::to_string),
                                name: c.name.value(k).to_string(),
                                arguments: c.arguments.value(k).to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                tool_call_id: opt(self.tool_call_id, j),
                name: opt(self.name, j),
            })
            .collect()
    }
}

/// An error when `a` holds a null (a "not null" column of retort's schema).
pub(crate) fn no_nulls(a: &dyn Array, name: &str) -> Result<(), StoreError> {
    if a.null_count() > 0 {
        return Err(StoreError::Schema(format!(
            "column `{name}` has {} null values but retort's schema does not allow nulls there",
            a.null_count()
        )));
    }
    Ok(())
}
