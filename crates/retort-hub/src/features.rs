//! Arrow schemas as the Hub's `dataset_info.features`: the YAML that `datasets`
//! writes for a schema (`Features._to_yaml_list`), so the card describes exactly the
//! columns a consumer gets. Scalars become `dtype: <name>`, lists `list: <inner>`
//! (`large_list` for large lists), structs `struct: [fields]`. A type `datasets` has no
//! name for is an error naming the column, not a guess.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::Serialize;

/// One named feature (a column or a struct field).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Feature {
    /// Column or field name.
    pub name: String,
    /// Its type.
    #[serde(flatten)]
    pub ty: FeatureType,
}

/// A feature's type, keyed as `datasets` keys it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    /// A scalar: `dtype: string`.
    Dtype(String),
    /// A list: `list: <inner>`.
    List(Box<Inner>),
    /// A large list: `large_list: <inner>`.
    LargeList(Box<Inner>),
    /// A struct: `struct: [fields]`.
    Struct(Vec<Feature>),
}

/// What a list holds: a scalar name, a struct's fields, or another list.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Inner {
    /// `list: string`.
    Dtype(String),
    /// `list: [fields]` (a list of structs).
    Fields(Vec<Feature>),
    /// `list: {list: …}` (a list of lists).
    Nested(NestedList),
}

/// A list inside a list.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NestedList {
    /// `list: …`.
    List(Box<Inner>),
    /// `large_list: …`.
    LargeList(Box<Inner>),
}

/// The features of a schema, or the first column whose type has no `datasets` name.
pub fn features(schema: &Schema) -> Result<Vec<Feature>, String> {
    schema
        .fields()
        .iter()
        .map(|f| feature(f, f.name()))
        .collect()
}

fn feature(f: &Field, path: &str) -> Result<Feature, String> {
    Ok(Feature {
        name: f.name().clone(),
        ty: ty(f.data_type(), path)?,
    })
}

fn ty(t: &DataType, path: &str) -> Result<FeatureType, String> {
    Ok(match t {
        DataType::List(item) => FeatureType::List(Box::new(inner(item, path)?)),
        DataType::LargeList(item) => FeatureType::LargeList(Box::new(inner(item, path)?)),
        DataType::Struct(fields) => FeatureType::Struct(
            fields
                .iter()
                .map(|f| feature(f, &format!("{path}.{}", f.name())))
                .collect::<Result<_, _>>()?,
        ),
        other => FeatureType::Dtype(dtype(other, path)?),
    })
}

fn inner(item: &Field, path: &str) -> Result<Inner, String> {
    let path = format!("{path}[]");
    Ok(match ty(item.data_type(), &path)? {
        FeatureType::Dtype(d) => Inner::Dtype(d),
        FeatureType::Struct(fields) => Inner::Fields(fields),
        FeatureType::List(i) => Inner::Nested(NestedList::List(i)),
        FeatureType::LargeList(i) => Inner::Nested(NestedList::LargeList(i)),
    })
}

/// `datasets`' name of a scalar Arrow type (`_arrow_to_datasets_dtype`).
fn dtype(t: &DataType, path: &str) -> Result<String, String> {
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    };
    Ok(match t {
        DataType::Null => "null".into(),
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "float16".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Binary => "binary".into(),
        DataType::LargeBinary => "large_binary".into(),
        DataType::Date32 => "date32".into(),
        DataType::Date64 => "date64".into(),
        DataType::Timestamp(u, None) => format!("timestamp[{}]", unit(u)),
        DataType::Timestamp(u, Some(tz)) => format!("timestamp[{}, tz={tz}]", unit(u)),
        other => {
            return Err(format!(
                "column `{path}` has Arrow type {other}, which the Hub's `datasets` features cannot name"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn messages_schema_is_written_as_datasets_writes_it() {
        let msg = DataType::Struct(
            vec![
                Field::new("role", DataType::Utf8, true),
                Field::new("content", DataType::Utf8, true),
            ]
            .into(),
        );
        let s = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new(
                "messages",
                DataType::List(Arc::new(Field::new("item", msg, true))),
                true,
            ),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new("score", DataType::Float64, true),
        ]);
        let y = serde_yaml::to_string(&features(&s).unwrap()).unwrap();
        assert_eq!(
            y,
            "- name: id\n  dtype: string\n- name: messages\n  list:\n  - name: role\n    dtype: string\n  - name: content\n    dtype: string\n- name: tags\n  list: string\n- name: score\n  dtype: float64\n"
        );
        let bad = Schema::new(vec![Field::new(
            "d",
            DataType::Duration(TimeUnit::Second),
            true,
        )]);
        assert!(features(&bad).unwrap_err().contains("column `d`"));
    }
}
