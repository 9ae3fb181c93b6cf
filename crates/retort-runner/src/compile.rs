//! Compile a pipeline file into a checked [`Plan`]: every problem is collected and
//! reported at once, each with the file, the step id, the line and a hint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use retort_steps::registry::{self, BuildCtx, Built, StepSpec};
use retort_steps::Shape;
use retort_teacher::{EmbedderConfig, TeacherConfig};
use sha2::{Digest, Sha256};

use crate::pipeline::{apply_set, check_card_keys, CompileError, Source};

const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "license",
    "seed",
    "max_budget_usd",
    "teachers",
    "embedder",
    "step",
];

/// A step that passed every check, in execution (topological) order.
pub struct PlannedStep {
    /// Id, kind, inputs and options as written (after `--set`).
    pub spec: StepSpec,
    /// The runnable step and what `plan` needs to know about it.
    pub built: Built,
    /// How the runner feeds it.
    pub shape: Shape,
    /// Line of its `[[step]]` header.
    pub line: Option<usize>,
    /// Config hash: kind, options, input files, teachers used and every upstream hash.
    /// A change anywhere upstream changes it, which is how a changed step invalidates
    /// everything downstream.
    pub hash: String,
}

/// A checked pipeline, ready to run.
pub struct Plan {
    /// The pipeline file.
    pub source: Source,
    /// Directory of the pipeline file.
    pub base_dir: PathBuf,
    /// Pipeline name (default: the file stem); the run directory is `runs/<name>`.
    pub name: String,
    /// Pipeline seed.
    pub seed: u64,
    /// Stop sending requests once this much has been spent.
    pub max_budget_usd: Option<f64>,
    /// Teachers by name.
    pub teachers: BTreeMap<String, TeacherConfig>,
    /// The embedder, if declared.
    pub embedder: Option<EmbedderConfig>,
    /// Steps in topological order.
    pub steps: Vec<PlannedStep>,
    /// The pipeline after `--set` overrides, as written to the manifest. Holds no
    /// secrets: keys are only ever named by environment variable.
    pub resolved: toml::Table,
    /// sha256 of the resolved pipeline.
    pub hash: String,
}

impl Plan {
    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.spec.id == id)
    }
}

/// Compile `path` with `--set` overrides. Returns every problem found, or the plan.
pub fn compile(path: &Path, sets: &[String]) -> Result<Plan, Vec<CompileError>> {
    compile_limited(path, sets, None)
}

/// [`compile`], and with `limit` every `load` step reads at most that many rows
/// (`retort run --limit N`). The limit becomes part of each load step's options, so it is
/// in the pipeline hash: a limited run's checkpoints are never taken for a full run's.
pub fn compile_limited(
    path: &Path,
    sets: &[String],
    limit: Option<u64>,
) -> Result<Plan, Vec<CompileError>> {
    let source = Source::read(path).map_err(|e| vec![e])?;
    let mut errors = Vec::new();

    let mut doc: toml::Table = match source.text.parse::<toml::Table>() {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| source.line_of_offset(s.start));
            return Err(vec![source.error(
                line,
                None,
                format!("not valid TOML: {}", e.message()),
                Some("fix the syntax at that line; see docs/pipelines.md for the format"),
            )]);
        }
    };
    for s in sets {
        if let Err(m) = apply_set(&mut doc, s) {
            errors.push(source.error(None, None, m, Some("--set takes path.to.key=value")));
        }
    }
    if let Some(n) = limit {
        let loads: Vec<&mut toml::Table> = doc
            .get_mut("step")
            .and_then(|s| s.as_array_mut())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_table_mut())
            .filter(|t| t.get("kind").and_then(|k| k.as_str()) == Some("load"))
            .collect();
        if loads.is_empty() {
            errors.push(source.error(
                None,
                None,
                "--limit caps the rows of `load` steps, and this pipeline has none",
                Some("limit a generator with --set step.<id>.target=N instead"),
            ));
        }
        for t in loads {
            t.insert(
                "limit".into(),
                toml::Value::Integer(n.min(i64::MAX as u64) as i64),
            );
        }
    }

    for key in doc.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            errors.push(
                source.error(
                    source
                        .key_line(key, 1, usize::MAX / 2)
                        .or_else(|| source.header_line(&format!("[{key}]"))),
                    None,
                    format!("unknown top-level key `{key}`"),
                    Some(&format!("allowed: {}", TOP_LEVEL_KEYS.join(", "))),
                ),
            );
        }
    }

    check_card_keys(&source, &doc, &mut errors);

    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let name = match doc.get("name") {
        None => path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("run")
            .to_string(),
        Some(toml::Value::String(s)) if valid_name(s) => s.clone(),
        Some(v) => {
            errors.push(source.error(
                source.key_line("name", 1, usize::MAX / 2),
                None,
                format!("`name` must be a string of letters, digits, `-`, `_` or `.`; got {v}"),
                Some("the name becomes the run directory runs/<name>"),
            ));
            "run".into()
        }
    };
    let seed = match doc.get("seed") {
        None => 0,
        Some(toml::Value::Integer(i)) if *i >= 0 => *i as u64,
        Some(v) => {
            errors.push(source.error(
                source.key_line("seed", 1, usize::MAX / 2),
                None,
                format!("`seed` must be a non-negative integer; got {v}"),
                None,
            ));
            0
        }
    };
    let max_budget_usd = match doc.get("max_budget_usd") {
        None => None,
        Some(toml::Value::Float(f)) if *f > 0.0 => Some(*f),
        Some(toml::Value::Integer(i)) if *i > 0 => Some(*i as f64),
        Some(v) => {
            errors.push(source.error(
                source.key_line("max_budget_usd", 1, usize::MAX / 2),
                None,
                format!("`max_budget_usd` must be a positive number; got {v}"),
                None,
            ));
            None
        }
    };

    let teachers = compile_teachers(&source, &doc, &mut errors);
    let embedder = compile_embedder(&source, &doc, &mut errors);

    // Steps are checked against what the file declares, valid or not: a typo inside
    // [teachers.big] is one error there, not one more per step that uses `big`.
    let ctx = BuildCtx {
        base_dir: base_dir.clone(),
        teachers: match doc.get("teachers").and_then(|t| t.as_table()) {
            Some(t) => t.keys().cloned().collect(),
            None => vec![],
        },
        has_embedder: doc.contains_key("embedder"),
    };
    let steps = compile_steps(
        &source,
        &doc,
        &ctx,
        &teachers,
        (seed, embedder.as_ref()),
        &mut errors,
    );

    if !errors.is_empty() {
        return Err(errors);
    }
    let hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&doc).expect("TOML tables serialise"),
    ));
    Ok(Plan {
        source,
        base_dir,
        name,
        seed,
        max_budget_usd,
        teachers,
        embedder,
        steps,
        resolved: doc,
        hash,
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn compile_teachers(
    source: &Source,
    doc: &toml::Table,
    errors: &mut Vec<CompileError>,
) -> BTreeMap<String, TeacherConfig> {
    let mut out = BTreeMap::new();
    let Some(t) = doc.get("teachers") else {
        return out;
    };
    let Some(t) = t.as_table() else {
        errors.push(source.error(
            None,
            None,
            "`teachers` must be a table of named teachers",
            Some("write [teachers.<name>] sections"),
        ));
        return out;
    };
    for (name, v) in t {
        let header = format!("[teachers.{name}]");
        let line = source.header_line(&header);
        match v.clone().try_into::<TeacherConfig>() {
            Ok(mut cfg) => {
                // A local model is compute-bound: a request's wait includes the queue
                // behind other sequences on a busy CPU, so the HTTP default timeout would
                // cut off work that is progressing. Unless the file says otherwise, give
                // it an hour.
                if cfg.provider == retort_teacher::Provider::Local
                    && v.get("timeout_secs").is_none()
                {
                    cfg.timeout_secs = 3600.0;
                }
                for m in cfg.validate() {
                    errors.push(source.error(line, None, format!("{header}: {m}"), None));
                }
                out.insert(name.clone(), cfg);
            }
            Err(e) => errors.push(source.error(
                line.map(|l| field_line(source, &e.to_string(), l).unwrap_or(l)),
                None,
                format!("{header}: {}", e.message().trim()),
                Some("see the teacher options in docs/pipelines.md"),
            )),
        }
    }
    out
}

fn compile_embedder(
    source: &Source,
    doc: &toml::Table,
    errors: &mut Vec<CompileError>,
) -> Option<EmbedderConfig> {
    let v = doc.get("embedder")?;
    let line = source.header_line("[embedder]");
    match v.clone().try_into::<EmbedderConfig>() {
        Ok(cfg) => {
            for m in cfg.validate() {
                errors.push(source.error(line, None, format!("[embedder]: {m}"), None));
            }
            Some(cfg)
        }
        Err(e) => {
            errors.push(source.error(
                line,
                None,
                format!("[embedder]: {}", e.message().trim()),
                Some("see the embedder options in docs/pipelines.md"),
            ));
            None
        }
    }
}

/// Find the line of the key a serde message names: the one after "field `" when there
/// is one (unknown or missing fields), else the first backticked name that is a key in
/// the block starting at `from`.
fn field_line(source: &Source, message: &str, from: usize) -> Option<usize> {
    let to = source.text.lines().count();
    let names: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if let Some(i) = message.find("field `") {
        let rest = &message[i + 7..];
        if let Some(end) = rest.find('`') {
            if let Some(l) = source.key_line(&rest[..end], from, to) {
                return Some(l);
            }
        }
    }
    names.iter().find_map(|n| source.key_line(n, from, to))
}

struct RawStep {
    spec: StepSpec,
    line: Option<usize>,
    end: usize,
}

fn compile_steps(
    source: &Source,
    doc: &toml::Table,
    ctx: &BuildCtx,
    teachers: &BTreeMap<String, TeacherConfig>,
    (seed, embedder): (u64, Option<&EmbedderConfig>),
    errors: &mut Vec<CompileError>,
) -> Vec<PlannedStep> {
    let blocks = source.step_blocks();
    let raw_steps = match doc.get("step") {
        None => {
            errors.push(source.error(
                None,
                None,
                "the pipeline has no steps",
                Some("add at least one [[step]] with an id and a kind"),
            ));
            return vec![];
        }
        Some(toml::Value::Array(a)) => a,
        Some(_) => {
            errors.push(source.error(
                None,
                None,
                "`step` must be an array of tables",
                Some("write each step as a [[step]] section"),
            ));
            return vec![];
        }
    };

    let mut raw = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, v) in raw_steps.iter().enumerate() {
        let (line, end) = blocks
            .get(i)
            .map(|(a, b)| (Some(*a), *b))
            .unwrap_or((None, usize::MAX / 2));
        let Some(t) = v.as_table() else {
            errors.push(source.error(line, None, "a step must be a table", None));
            continue;
        };
        let mut options = t.clone();
        let id = match options.remove("id") {
            // No dots: `--set step.<id>.<key>` must be able to address every step.
            Some(toml::Value::String(s)) if valid_name(&s) && !s.contains('.') => s,
            Some(v) => {
                errors.push(source.error(
                    line,
                    None,
                    format!("step id must be a string of letters, digits, `-`, `_`; got {v}"),
                    None,
                ));
                continue;
            }
            None => {
                errors.push(source.error(
                    line,
                    None,
                    format!("step #{} has no `id`", i + 1),
                    Some("give every step a unique id = \"...\""),
                ));
                continue;
            }
        };
        if !seen.insert(id.clone()) {
            errors.push(source.error(
                line,
                Some(&id),
                format!("duplicate step id `{id}`"),
                Some("step ids must be unique"),
            ));
            continue;
        }
        let kind = match options.remove("kind") {
            Some(toml::Value::String(s)) => s,
            _ => {
                errors.push(source.error(
                    line,
                    Some(&id),
                    "missing or non-string `kind`",
                    Some(&format!(
                        "known kinds: {}",
                        registry::KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
                    )),
                ));
                continue;
            }
        };
        let after = match options.remove("after") {
            None => vec![],
            Some(toml::Value::String(s)) => vec![s],
            Some(toml::Value::Array(a)) => {
                let mut v = Vec::new();
                for x in a {
                    match x {
                        toml::Value::String(s) => v.push(s),
                        other => errors.push(source.error(
                            source.key_line("after", line.unwrap_or(1), end),
                            Some(&id),
                            format!("`after` entries must be step ids (strings); got {other}"),
                            None,
                        )),
                    }
                }
                v
            }
            Some(other) => {
                errors.push(source.error(
                    source.key_line("after", line.unwrap_or(1), end),
                    Some(&id),
                    format!("`after` must be a step id or a list of step ids; got {other}"),
                    None,
                ));
                vec![]
            }
        };
        raw.push(RawStep {
            spec: StepSpec {
                id,
                kind,
                after,
                options,
            },
            line,
            end,
        });
    }

    // Build every step (option parsing, files, templates, teachers), collecting errors.
    let mut built: BTreeMap<String, (Built, Shape)> = BTreeMap::new();
    for r in &raw {
        match registry::build(&r.spec, ctx) {
            Ok(b) => {
                let shape = b.step.shape();
                built.insert(r.spec.id.clone(), (b, shape));
            }
            Err(msgs) => {
                for m in msgs {
                    let line = r.line.map(|l| {
                        field_line(source, &m, l)
                            .filter(|x| *x <= r.end)
                            .unwrap_or(l)
                    });
                    let (message, hint) = split_hint(&m);
                    errors.push(source.error(line, Some(&r.spec.id), message, hint.as_deref()));
                }
            }
        }
    }

    // Inputs: unknown ids, sources with inputs, non-sources without.
    let ids: BTreeSet<&str> = raw.iter().map(|r| r.spec.id.as_str()).collect();
    for r in &raw {
        let after_line = source
            .key_line("after", r.line.unwrap_or(1), r.end)
            .or(r.line);
        for a in &r.spec.after {
            if !ids.contains(a.as_str()) {
                errors.push(source.error(
                    after_line,
                    Some(&r.spec.id),
                    format!("input `{a}` is not a step in this pipeline"),
                    Some(&format!(
                        "`after` must name step ids; declared: {}",
                        ids.iter().copied().collect::<Vec<_>>().join(", ")
                    )),
                ));
            }
            if a == &r.spec.id {
                errors.push(source.error(
                    after_line,
                    Some(&r.spec.id),
                    "a step cannot take its own output as input",
                    None,
                ));
            }
        }
        if let Some((_, shape)) = built.get(&r.spec.id) {
            if *shape == Shape::Source && !r.spec.after.is_empty() {
                errors.push(source.error(
                    after_line,
                    Some(&r.spec.id),
                    format!(
                        "kind `{}` reads files and takes no `after` inputs",
                        r.spec.kind
                    ),
                    Some("remove `after`"),
                ));
            }
            if *shape != Shape::Source && r.spec.after.is_empty() {
                errors.push(source.error(
                    r.line,
                    Some(&r.spec.id),
                    format!("kind `{}` needs an input", r.spec.kind),
                    Some("add after = [\"<upstream step id>\"]"),
                ));
            }
        }
    }

    // Cycles (Kahn's algorithm), in file order for stable plans.
    let mut indeg: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &raw {
        indeg.insert(
            &r.spec.id,
            r.spec
                .after
                .iter()
                .filter(|a| ids.contains(a.as_str()))
                .count(),
        );
    }
    let mut order: Vec<&RawStep> = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    loop {
        let next = raw.iter().find(|r| {
            !done.contains(r.spec.id.as_str())
                && r.spec
                    .after
                    .iter()
                    .filter(|a| ids.contains(a.as_str()))
                    .all(|a| done.contains(a.as_str()))
        });
        match next {
            Some(r) => {
                done.insert(&r.spec.id);
                order.push(r);
            }
            None => break,
        }
    }
    let _ = indeg;
    if order.len() < raw.len() {
        let cyclic: Vec<&str> = raw
            .iter()
            .filter(|r| !done.contains(r.spec.id.as_str()))
            .map(|r| r.spec.id.as_str())
            .collect();
        let first = raw.iter().find(|r| !done.contains(r.spec.id.as_str()));
        errors.push(source.error(
            first.and_then(|r| r.line),
            first.map(|r| r.spec.id.as_str()),
            format!("the steps form a cycle: {}", cyclic.join(" → ")),
            Some("`after` links must form a DAG; remove one of the links"),
        ));
    }

    if !errors.is_empty() {
        return vec![];
    }

    // Config hashes, upstream first.
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    let mut built = built;
    for r in order {
        let (b, shape) = built.remove(&r.spec.id).expect("built above");
        let mut h = Sha256::new();
        h.update(r.spec.kind.as_bytes());
        // The pipeline seed drives every sampled choice; the embedder defines vectors.
        h.update(seed.to_le_bytes());
        if r.spec.kind == "embed" {
            h.update(
                serde_json::to_vec(&embedder.map(|e| (&e.provider, &e.model, &e.base_url)))
                    .unwrap_or_default(),
            );
        }
        h.update(serde_json::to_vec(&r.spec.options).expect("TOML tables serialise"));
        for a in &r.spec.after {
            h.update(a.as_bytes());
            h.update(hashes[a].as_bytes());
        }
        for f in &b.files {
            match file_digest(f) {
                Ok(d) => h.update(d),
                Err(e) => {
                    errors.push(source.error(
                        r.line,
                        Some(&r.spec.id),
                        format!("cannot read {}: {e}", f.display()),
                        Some("paths are relative to the pipeline file's folder"),
                    ));
                }
            }
        }
        let used: BTreeSet<&str> = b.estimates.iter().map(|e| e.teacher.as_str()).collect();
        // A step that prompts a teacher may use built-in templates, which are hashed by
        // content, not by name: a retort upgrade that rewords one must not leave old answers
        // standing as finished. All of them, since defaults are not visible here; re-running
        // costs little because unchanged prompts come from the response cache.
        if !used.is_empty() {
            for (name, text) in retort_steps::templates::builtins() {
                h.update(name.as_bytes());
                h.update(text.as_bytes());
            }
        }
        for t in used {
            if let Some(cfg) = teachers.get(t) {
                h.update(t.as_bytes());
                h.update(teacher_identity(cfg).as_bytes());
            }
        }
        let hash = hex::encode(h.finalize());
        hashes.insert(r.spec.id.clone(), hash.clone());
        out.push(PlannedStep {
            spec: r.spec.clone(),
            built: b,
            shape,
            line: r.line,
            hash,
        });
    }
    out
}

/// What about a teacher changes its answers: provider, model, endpoints' model and
/// sampling defaults. Rate limits and prices do not, so they stay out of the hash.
fn teacher_identity(cfg: &TeacherConfig) -> String {
    format!(
        "{}|{}|{:?}|{:?}|{:?}|{:?}|{}",
        cfg.provider.as_str(),
        cfg.model,
        cfg.temperature,
        cfg.top_p,
        cfg.max_tokens,
        cfg.model_path,
        serde_json::to_string(&cfg.extra_body).unwrap_or_default()
    )
}

/// Builders may append "; hint: …" to a message; split it into the hint line.
fn split_hint(m: &str) -> (String, Option<String>) {
    match m.split_once("; hint: ") {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (m.to_string(), None),
    }
}

/// SHA-256 of a file, read in 1 MiB blocks: inputs can be far larger than the memory a
/// run should touch before it starts (reading a 200 MB seed file whole was 5% of a
/// million-row run, mostly the kernel zeroing fresh pages for it).
fn file_digest(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}
