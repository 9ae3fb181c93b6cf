//! JSON writing by hand: the primitives every JSONL row is made of, and a record in the
//! shape of the internal Arrow schema. Hand-written so keys come out in column order and
//! numbers JSON cannot hold (NaN, infinities) are refused with the column's name instead
//! of being written as `null`.

use retort_core::{Message, Record};

pub(crate) fn js(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a JSON string to memory cannot fail");
}

pub(crate) fn jkey(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    js(out, key);
    out.push(b':');
}

pub(crate) fn jf64(out: &mut Vec<u8>, name: &str, v: f64) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!("`{name}` is {v}, which JSON cannot represent"));
    }
    serde_json::to_writer(&mut *out, &v).expect("writing a JSON number to memory cannot fail");
    Ok(())
}

pub(crate) fn jopt(out: &mut Vec<u8>, s: Option<&str>) {
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

/// Messages in the internal schema's shape: `reasoning`, `tool_calls`, `tool_call_id`
/// and `name` on every turn, null (or an empty list) when absent.
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
        jkey(out, &mut f, "tool_calls");
        out.push(b'[');
        for (k, c) in m.tool_calls.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            let mut g = true;
            out.push(b'{');
            jkey(out, &mut g, "id");
            jopt(out, c.id.as_deref());
            jkey(out, &mut g, "name");
            js(out, &c.name);
            jkey(out, &mut g, "arguments");
            js(out, &c.arguments);
            out.push(b'}');
        }
        out.push(b']');
        jkey(out, &mut f, "tool_call_id");
        jopt(out, m.tool_call_id.as_deref());
        jkey(out, &mut f, "name");
        jopt(out, m.name.as_deref());
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

/// A record in the JSON shape of the internal Arrow schema (same keys and nesting, so
/// `pyarrow.json` and `datasets` infer the Parquet schema's structure).
pub(crate) fn record_json(r: &Record, out: &mut Vec<u8>, first: &mut bool) -> Result<(), String> {
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
    jkey(out, first, "tools");
    jopt(out, crate::schema::tools_json(&r.tools).as_deref());
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
        jkey(out, &mut f, "reasoning");
        jopt(out, c.reasoning.as_deref());
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
