//! `filter`: keep rows matching a predicate over columns.
//!
//! The predicate language (documented in docs/pipelines.md):
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | cmp
//! cmp     := term (("==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "startswith") term)?
//! term    := number | 'string' | "string" | true | false | null
//!          | len(term) | words(term) | lower(term) | has(column) | column | "(" expr ")"
//! column  := name ("." name)*      e.g. quality, scores.quality, labels.language, instruction
//! ```
//! A column the record lacks is `null`; every comparison with `null` is false except
//! `== null` / `!= null`, so a missing score never passes `quality >= 7` by accident.
//! Rows that do not match are written to rejections.parquet (reason `filter`), not lost.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{ColumnValue, Record, Rejection};
use serde::Deserialize;

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// Options of a `filter` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterOptions {
    /// The predicate; rows for which it is true are kept.
    pub keep: String,
}

/// A parsed predicate.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
    Column(String),
    Len(Box<Expr>),
    Words(Box<Expr>),
    Lower(Box<Expr>),
    Has(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Box<Expr>, Op, Box<Expr>),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
}

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Null => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, String> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c == '(' {
            out.push((start, Tok::LParen));
            i += 1;
        } else if c == ')' {
            out.push((start, Tok::RParen));
            i += 1;
        } else if c == '\'' || c == '"' {
            let q = c;
            i += 1;
            let mut s = String::new();
            while i < b.len() && b[i] != q {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                s.push(b[i]);
                i += 1;
            }
            if i >= b.len() {
                return Err(format!(
                    "unterminated string starting at column {}",
                    start + 1
                ));
            }
            i += 1;
            out.push((start, Tok::Str(s)));
        } else if c.is_ascii_digit() || (c == '-' && i + 1 < b.len() && b[i + 1].is_ascii_digit()) {
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == '.' || b[i] == '_') {
                i += 1;
            }
            let s: String = b[start..i].iter().filter(|c| **c != '_').collect();
            let n = s
                .parse::<f64>()
                .map_err(|_| format!("bad number `{s}` at column {}", start + 1))?;
            out.push((start, Tok::Num(n)));
        } else if c.is_alphabetic() || c == '_' {
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '.') {
                i += 1;
            }
            out.push((start, Tok::Ident(b[start..i].iter().collect())));
        } else {
            let two: String = b[i..(i + 2).min(b.len())].iter().collect();
            let op = match two.as_str() {
                "==" => Some("=="),
                "!=" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                "&&" => Some("and"),
                "||" => Some("or"),
                _ => None,
            };
            if let Some(op) = op {
                out.push((start, Tok::Op(op)));
                i += 2;
            } else {
                let op = match c {
                    '<' => "<",
                    '>' => ">",
                    '!' => "not",
                    '=' => "==",
                    _ => return Err(format!("unexpected `{c}` at column {}", start + 1)),
                };
                out.push((start, Tok::Op(op)));
                i += 1;
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn col(&self) -> usize {
        self.toks.get(self.pos).map(|(c, _)| c + 1).unwrap_or(0)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(w))
            || matches!(self.peek(), Some(Tok::Op(s)) if *s == w)
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.is_word("or") {
            self.pos += 1;
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        while self.is_word("and") {
            self.pos += 1;
            l = Expr::And(Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.is_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        let l = self.term()?;
        let op = match self.peek() {
            Some(Tok::Op("==")) => Op::Eq,
            Some(Tok::Op("!=")) => Op::Ne,
            Some(Tok::Op("<")) => Op::Lt,
            Some(Tok::Op("<=")) => Op::Le,
            Some(Tok::Op(">")) => Op::Gt,
            Some(Tok::Op(">=")) => Op::Ge,
            Some(Tok::Ident(s)) if s == "contains" => Op::Contains,
            Some(Tok::Ident(s)) if s == "startswith" => Op::StartsWith,
            _ => return Ok(l),
        };
        self.pos += 1;
        let r = self.term()?;
        Ok(Expr::Cmp(Box::new(l), op, Box::new(r)))
    }
    fn term(&mut self) -> Result<Expr, String> {
        let col = self.col();
        let t = self
            .toks
            .get(self.pos)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| "the expression ends too early".to_string())?;
        self.pos += 1;
        match t {
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::LParen => {
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(format!("expected `)` at column {}", self.col()));
                }
                self.pos += 1;
                Ok(e)
            }
            Tok::Ident(name) => {
                match name.as_str() {
                    "true" => return Ok(Expr::Bool(true)),
                    "false" => return Ok(Expr::Bool(false)),
                    "null" => return Ok(Expr::Null),
                    _ => {}
                }
                if self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    let arg = self.or()?;
                    if self.peek() != Some(&Tok::RParen) {
                        return Err(format!("expected `)` at column {}", self.col()));
                    }
                    self.pos += 1;
                    return match name.as_str() {
                        "len" => Ok(Expr::Len(Box::new(arg))),
                        "words" => Ok(Expr::Words(Box::new(arg))),
                        "lower" => Ok(Expr::Lower(Box::new(arg))),
                        "has" => match arg {
                            Expr::Column(c) => Ok(Expr::Has(c)),
                            _ => Err(format!("has() takes a column name (column {col})")),
                        },
                        other => Err(format!(
                            "unknown function `{other}` at column {col}; functions: len, words, lower, has"
                        )),
                    };
                }
                Ok(Expr::Column(name))
            }
            Tok::RParen => Err(format!("unexpected `)` at column {col}")),
            Tok::Op(o) => Err(format!("unexpected `{o}` at column {col}")),
        }
    }
}

/// Most tokens in a predicate. Parsing, evaluating and dropping an expression recurse
/// once per nesting level or chained `and`/`or`, so an unbounded predicate could overflow
/// the stack; this bound keeps the depth far inside a 2 MiB thread stack.
const MAX_TOKENS: usize = 1_000;

/// Parse a predicate; the error names the column of the problem.
pub fn parse(src: &str) -> Result<Expr, String> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err("the predicate is empty".into());
    }
    if toks.len() > MAX_TOKENS {
        return Err(format!(
            "the predicate is too long: {} tokens, at most {MAX_TOKENS}; hint: split it into several filter steps",
            toks.len()
        ));
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected text at column {}", p.col()));
    }
    Ok(e)
}

fn column(r: &Record, name: &str) -> Val {
    match r.column(name) {
        Some(ColumnValue::Num(n)) => Val::Num(n),
        Some(ColumnValue::Str(s)) => Val::Str(s.to_string()),
        None => match name {
            "prompt" => Val::Str(r.prompt_text()),
            "response" => r.response_text().map(Val::Str).unwrap_or(Val::Null),
            _ => Val::Null,
        },
    }
}

/// Evaluate a predicate against a record.
pub fn eval(e: &Expr, r: &Record) -> Val {
    match e {
        Expr::Num(n) => Val::Num(*n),
        Expr::Str(s) => Val::Str(s.clone()),
        Expr::Bool(b) => Val::Bool(*b),
        Expr::Null => Val::Null,
        Expr::Column(c) => column(r, c),
        Expr::Has(c) => Val::Bool(column(r, c) != Val::Null),
        Expr::Len(x) => match eval(x, r) {
            Val::Str(s) => Val::Num(s.chars().count() as f64),
            Val::Null => Val::Null,
            other => Val::Num(format_val(&other).chars().count() as f64),
        },
        Expr::Words(x) => match eval(x, r) {
            Val::Str(s) => Val::Num(s.split_whitespace().count() as f64),
            _ => Val::Null,
        },
        Expr::Lower(x) => match eval(x, r) {
            Val::Str(s) => Val::Str(s.to_lowercase()),
            other => other,
        },
        Expr::Not(x) => Val::Bool(!eval(x, r).truthy()),
        Expr::And(a, b) => Val::Bool(eval(a, r).truthy() && eval(b, r).truthy()),
        Expr::Or(a, b) => Val::Bool(eval(a, r).truthy() || eval(b, r).truthy()),
        Expr::Cmp(a, op, b) => Val::Bool(compare(&eval(a, r), *op, &eval(b, r))),
    }
}

fn format_val(v: &Val) -> String {
    match v {
        Val::Num(n) => n.to_string(),
        Val::Str(s) => s.clone(),
        Val::Bool(b) => b.to_string(),
        Val::Null => String::new(),
    }
}

fn compare(a: &Val, op: Op, b: &Val) -> bool {
    use std::cmp::Ordering::*;
    if matches!(a, Val::Null) || matches!(b, Val::Null) {
        return match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            _ => false,
        };
    }
    let ord = match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        // A label holding a number compares numerically ("3" == 3).
        (Val::Str(x), Val::Num(y)) => x.trim().parse::<f64>().ok().and_then(|x| x.partial_cmp(y)),
        (Val::Num(x), Val::Str(y)) => y.trim().parse::<f64>().ok().and_then(|y| x.partial_cmp(&y)),
        (Val::Str(x), Val::Bool(y)) | (Val::Bool(y), Val::Str(x)) => {
            Some(if x == &y.to_string() { Equal } else { Less })
        }
        _ => None,
    };
    match op {
        Op::Eq => ord == Some(Equal),
        Op::Ne => ord != Some(Equal),
        Op::Lt => ord == Some(Less),
        Op::Le => matches!(ord, Some(Less | Equal)),
        Op::Gt => ord == Some(Greater),
        Op::Ge => matches!(ord, Some(Greater | Equal)),
        Op::Contains => format_val(a).contains(&format_val(b)),
        Op::StartsWith => format_val(a).starts_with(&format_val(b)),
    }
}

/// Build a `filter` step.
pub fn build(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: FilterOptions = parse_options(spec)?;
    let expr = parse(&o.keep).map_err(|e| {
        vec![format!(
            "`keep = \"{}\"` does not parse: {e}; hint: e.g. keep = \"quality >= 7 and len(output) > 20\"",
            o.keep
        )]
    })?;
    Ok(Built::new(
        Arc::new(Filter {
            expr: Arc::new(expr),
            src: o.keep.clone(),
        }),
        format!("rows where {}", o.keep),
    ))
}

/// The `filter` step.
pub struct Filter {
    expr: Arc<Expr>,
    src: String,
}

#[async_trait]
impl MapStep for Filter {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let expr = self.expr.clone();
        let src = self.src.clone();
        let step = ctx.step_id.clone();
        Ok(ctx
            .cpu
            .run(move || {
                let mut b = Batch::default();
                for r in batch {
                    if eval(&expr, &r).truthy() {
                        b.records.push(r);
                    } else {
                        b.rejections.push(Rejection {
                            step: step.clone(),
                            record_id: r.id.clone(),
                            reason: "filter".into(),
                            detail: src.clone(),
                            text: r.prompt_text(),
                        });
                    }
                }
                b
            })
            .await)
    }
}

crate::map_step!(Filter, CPU_BATCH);

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        let mut r = Record {
            instruction: Some("Write a haiku about rain".into()),
            output: Some("Soft rain on the roof".into()),
            ..Default::default()
        };
        r.scores.insert("quality".into(), 7.5);
        r.labels.insert("language".into(), "en".into());
        r
    }

    fn keep(src: &str) -> bool {
        eval(&parse(src).unwrap(), &rec()).truthy()
    }

    #[test]
    fn comparisons_and_logic() {
        assert!(keep("quality >= 7"));
        assert!(keep("scores.quality > 7 and language == 'en'"));
        assert!(!keep("quality >= 8 or labels.language != \"en\""));
        assert!(keep("not (quality < 5)"));
        assert!(keep("len(instruction) > 10 and words(output) == 5"));
        assert!(keep("instruction contains 'haiku'"));
        assert!(keep("lower(instruction) startswith 'write'"));
    }

    #[test]
    fn missing_column_never_passes_a_threshold() {
        assert!(!keep("difficulty >= 0"));
        assert!(!keep("difficulty < 100"));
        assert!(keep("difficulty == null"));
        assert!(keep("not has(difficulty) and has(quality)"));
    }

    #[test]
    fn parse_errors_name_the_column() {
        let e = parse("quality >= ").unwrap_err();
        assert!(e.contains("ends too early"), "{e}");
        let e = parse("quality >= 3 )").unwrap_err();
        assert!(e.contains("column 14"), "{e}");
        let e = parse("foo(x)").unwrap_err();
        assert!(e.contains("unknown function"), "{e}");
    }

    #[test]
    fn deep_or_long_predicates_are_errors_not_stack_overflows() {
        // Found while fuzzing: 10,000 nested parentheses or 100,000 `not`s overflowed
        // the parser's stack, and a chain of 10,000 `and`s the evaluator's (an abort,
        // not even a panic).
        let n = 100_000;
        for src in [
            format!("{}x{}", "(".repeat(n), ")".repeat(n)),
            format!("{}x", "not ".repeat(n)),
            format!("len({}x{}", "lower(".repeat(n), ")".repeat(n + 1)),
            format!("x{}", " and x".repeat(n)),
            format!("x{}", " or x".repeat(n)),
        ] {
            let e = parse(&src).unwrap_err();
            assert!(e.contains("too long"), "{e}");
        }
        // A long but reasonable predicate still parses and evaluates.
        let src = format!("quality >= 7{}", " and id != 'x'".repeat(200));
        assert!(keep(&src));
    }
}
