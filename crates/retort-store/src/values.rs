//! Arrow value → `serde_json::Value`, for reading Parquet files of any schema as rows
//! and for printing rows in `inspect`.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Number, Value};

/// How to treat values JSON cannot hold exactly (NaN/infinite floats, binary).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Refuse them: a loaded row must not silently change meaning.
    Strict,
    /// Show them as descriptive strings (for display only).
    Display,
}

fn float(v: f64, mode: Mode) -> Result<Value, String> {
    match Number::from_f64(v) {
        Some(n) => Ok(Value::Number(n)),
        None if mode == Mode::Display => Ok(Value::String(v.to_string())),
        None => Err(format!(
            "non-finite number {v} cannot be represented in JSON"
        )),
    }
}

/// The value at row `i` of `a` as JSON. Nested lists, structs and maps become arrays and
/// objects; dates, times, timestamps and decimals become their canonical strings (so no
/// precision is lost).
pub(crate) fn value(a: &dyn Array, i: usize, mode: Mode) -> Result<Value, String> {
    if a.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match a.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float16 => float(a.as_primitive::<Float16Type>().value(i).to_f64(), mode)?,
        DataType::Float32 => float(a.as_primitive::<Float32Type>().value(i) as f64, mode)?,
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(i), mode)?,
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(a.as_string_view().value(i).to_string()),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let len = match a.data_type() {
                DataType::Binary => a.as_binary::<i32>().value(i).len(),
                DataType::LargeBinary => a.as_binary::<i64>().value(i).len(),
                DataType::BinaryView => a.as_binary_view().value(i).len(),
                _ => a.as_fixed_size_binary().value(i).len(),
            };
            if mode == Mode::Display {
                Value::String(format!("<{len} bytes>"))
            } else {
                return Err(format!(
                    "binary value ({len} bytes) cannot be loaded as text; convert the column to a string first"
                ));
            }
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            list(l.value(i).as_ref(), mode)?
        }
        DataType::LargeList(_) => list(a.as_list::<i64>().value(i).as_ref(), mode)?,
        DataType::FixedSizeList(_, _) => list(a.as_fixed_size_list().value(i).as_ref(), mode)?,
        DataType::ListView(_) => list(a.as_list_view::<i32>().value(i).as_ref(), mode)?,
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut m = Map::new();
            for (f, c) in fields.iter().zip(s.columns()) {
                m.insert(f.name().clone(), value(c.as_ref(), i, mode)?);
            }
            Value::Object(m)
        }
        DataType::Map(_, _) => {
            let m = a.as_map();
            let entries = m.value(i);
            let keys = entries.column(0);
            let vals = entries.column(1);
            let mut obj = Map::new();
            let mut as_pairs = Vec::new();
            let mut string_keys = true;
            for j in 0..entries.len() {
                let k = value(keys.as_ref(), j, mode)?;
                let v = value(vals.as_ref(), j, mode)?;
                match &k {
                    Value::String(s) if string_keys => {
                        obj.insert(s.clone(), v.clone());
                    }
                    _ => string_keys = false,
                }
                as_pairs.push(Value::Array(vec![k, v]));
            }
            // JSON objects need string keys; other maps keep their entries as pairs.
            if string_keys {
                Value::Object(obj)
            } else {
                Value::Array(as_pairs)
            }
        }
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            let key = d.normalized_keys()[i];
            value(d.values().as_ref(), key, mode)?
        }
        DataType::RunEndEncoded(_, _) => {
            let f =
                ArrayFormatter::try_new(a, &FormatOptions::default()).map_err(|e| e.to_string())?;
            Value::String(f.value(i).to_string())
        }
        _ => {
            // Dates, times, timestamps, durations, intervals, decimals: Arrow's canonical
            // text form (ISO 8601, exact decimal digits).
            let f =
                ArrayFormatter::try_new(a, &FormatOptions::default()).map_err(|e| e.to_string())?;
            Value::String(f.value(i).to_string())
        }
    })
}

fn list(values: &dyn Array, mode: Mode) -> Result<Value, String> {
    (0..values.len())
        .map(|j| value(values, j, mode))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}
