//! `retort push`: upload a run's card and exports to a Hub dataset repository in one
//! commit, over the protocol the official `huggingface_hub` client speaks (read from
//! its `hf_api.py`, `_commit_api.py` and `lfs.py`):
//!
//! 1. `POST /api/repos/create` `{name, organization, type: "dataset"[, visibility]}`;
//!    409 means the repository exists, which is fine.
//! 2. For a revision other than `main`: `POST /api/datasets/{repo}/branch/{rev}`
//!    (409: the branch exists).
//! 3. `POST /api/datasets/{repo}/preupload/{rev}` with each file's path, size and
//!    first 512 bytes (base64): the Hub answers `uploadMode` (`regular` or `lfs`),
//!    `shouldIgnore` and the `oid` of the file already at that path. A file whose oid
//!    equals ours (git blob sha1 for regular files, sha256 for LFS) is unchanged and
//!    left out of the commit; an empty file is always regular.
//! 4. LFS files: `POST {endpoint}/datasets/{repo}.git/info/lfs/objects/batch` (git-lfs
//!    batch API, `transfers: ["basic", "multipart"]`). An object without `actions` is
//!    already stored — this is what makes a re-run after an interrupted push resume:
//!    only objects the Hub lacks are sent again. Otherwise the file is PUT to the
//!    `upload` href (basic), or in `chunk_size` parts to the numbered hrefs followed by
//!    a completion POST to the `upload` href (multipart), then `verify` is POSTed.
//! 5. `POST /api/datasets/{repo}/commit/{rev}` as `application/x-ndjson`: a `header`
//!    line, a `file` line (base64 content) per regular file and an `lfsFile` line
//!    (`algo: sha256`, `oid`, `size`) per LFS file. Nothing changed: no commit.
//!
//! The token is sent as `Authorization: Bearer` to the Hub's own endpoints only (never
//! to upload hrefs, which are pre-signed), marked sensitive, and redacted from every
//! server message this module repeats.
//!
//! Size: ~785 lines of code plus tests. The upload is one ordered protocol (repo,
//! preupload, LFS batch, basic or multipart upload, verify, commit) over one client
//! that owns the token and its redaction; one file keeps that order readable top to
//! bottom against the official client's source.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use retort_teacher::Secret;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::card::{Card, CardOptions};
use crate::gitoid::git_blob_sha1;
use crate::upload_set::{upload_set, Source, UploadFile};
use crate::HubError;

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// `Accept`/`Content-Type` of git-lfs batch requests.
const LFS_JSON: &str = "application/vnd.git-lfs+json";

/// How to push.
#[derive(Debug)]
pub struct PushOptions {
    /// `ORG/NAME`.
    pub repo: String,
    /// Hub endpoint, e.g. `https://huggingface.co` (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The token.
    pub token: Secret,
    /// The environment variable it came from, for error messages.
    pub token_env: String,
    /// Create the repository private.
    pub private: bool,
    /// Commit message (default: one naming the run).
    pub message: Option<String>,
    /// Branch to commit to (created from `main` when missing); `main` by default.
    pub revision: Option<String>,
    /// Also upload `report.html`.
    pub include_report: bool,
    /// Also upload the resolved pipeline as `retort/pipeline.toml`.
    pub include_pipeline: bool,
}

/// What a push did.
#[derive(Clone, Debug, Default)]
pub struct PushOutcome {
    /// `ORG/NAME`.
    pub repo: String,
    /// The branch committed to.
    pub revision: String,
    /// True when this push created the repository.
    pub created_repo: bool,
    /// True when this push created the branch.
    pub created_branch: bool,
    /// The new commit, or `None` when nothing had changed.
    pub commit_oid: Option<String>,
    /// Its URL as the Hub reported it.
    pub commit_url: Option<String>,
    /// Files in the commit sent inline (regular).
    pub regular_files: Vec<String>,
    /// Files in the commit sent through LFS.
    pub lfs_files: Vec<String>,
    /// LFS objects the Hub already had (not uploaded again).
    pub lfs_already_stored: Vec<String>,
    /// Files left out because the Hub already has them unchanged at that path.
    pub unchanged: Vec<String>,
    /// Things the user should know (no license).
    pub warnings: Vec<String>,
}

/// One file with what the protocol needs to know about it.
struct Prepared {
    file: UploadFile,
    size: u64,
    sample: Vec<u8>,
    sha256: String,
}

#[derive(Deserialize)]
struct PreuploadAnswer {
    files: Vec<PreuploadFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreuploadFile {
    path: String,
    upload_mode: String,
    #[serde(default)]
    should_ignore: bool,
    #[serde(default)]
    oid: Option<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    objects: Vec<BatchObject>,
}

#[derive(Deserialize)]
struct BatchObject {
    oid: String,
    #[serde(default)]
    actions: Option<BatchActions>,
    #[serde(default)]
    error: Option<BatchError>,
}

#[derive(Deserialize)]
struct BatchError {
    code: i64,
    message: String,
}

#[derive(Deserialize)]
struct BatchActions {
    upload: Option<LfsAction>,
    verify: Option<LfsAction>,
}

#[derive(Deserialize)]
struct LfsAction {
    href: String,
    #[serde(default)]
    header: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommitAnswer {
    commit_oid: String,
    #[serde(default)]
    commit_url: Option<String>,
}

/// Checks `ORG/NAME` the way the Hub names repositories.
pub fn check_repo_id(repo: &str) -> Result<(&str, &str), HubError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 96
            && !s.starts_with(['-', '.'])
            && !s.ends_with(['-', '.'])
            && !s.contains("--")
            && !s.contains("..")
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((org, name)) if ok(org) && ok(name) => Ok((org, name)),
        _ => Err(HubError::Usage(format!(
            "--repo `{repo}` is not ORG/NAME (letters, digits, `-`, `_`, `.`; e.g. my-org/my-dataset)"
        ))),
    }
}

/// Pushes the run at `run_dir`.
pub async fn push(run_dir: &Path, opts: &PushOptions) -> Result<PushOutcome, HubError> {
    let (org, name) = check_repo_id(&opts.repo)?;
    let card = Card::build(run_dir, &CardOptions::default())?;
    let mut out = PushOutcome {
        repo: opts.repo.clone(),
        revision: opts.revision.clone().unwrap_or_else(|| "main".into()),
        ..Default::default()
    };
    if card.license_missing {
        let w = "the pipeline declares no `license`, so the card states none: add `license = \"…\"` (e.g. \"apache-2.0\") to the pipeline file and run it again before sharing".to_string();
        tracing::warn!("{w}");
        out.warnings.push(w);
    }
    let files = upload_set(run_dir, &card, opts.include_report, opts.include_pipeline)?;
    let hub = Hub::new(opts)?;

    out.created_repo = hub.create_repo(org, name, opts.private).await?;
    if out.revision != "main" {
        out.created_branch = hub.create_branch(&out.revision).await?;
    }

    let mut prepared = Vec::with_capacity(files.len());
    for f in files {
        prepared.push(prepare(f).await?);
    }
    let modes = hub.preupload(&out.revision, &prepared).await?;

    let mut regular = Vec::new();
    let mut lfs = Vec::new();
    for p in &prepared {
        let m = modes
            .iter()
            .find(|m| m.path == p.file.repo_path)
            .ok_or_else(|| {
                HubError::Hub(format!(
                    "the Hub's preupload answer does not mention `{}`; is {} a Hugging Face Hub?",
                    p.file.repo_path, opts.endpoint
                ))
            })?;
        if m.should_ignore {
            out.warnings.push(format!(
                "the repository's .gitignore ignores `{}`; it was not uploaded",
                p.file.repo_path
            ));
            continue;
        }
        let is_lfs = match m.upload_mode.as_str() {
            _ if p.size == 0 => false,
            "lfs" => true,
            "regular" => false,
            other => {
                return Err(HubError::Hub(format!(
                    "the Hub asked to upload `{}` in mode `{other}`, which retort does not speak (it speaks `regular` and `lfs`); update retort",
                    p.file.repo_path
                )))
            }
        };
        if is_lfs {
            if m.oid.as_deref() == Some(p.sha256.as_str()) {
                out.unchanged.push(p.file.repo_path.clone());
            } else {
                lfs.push(p);
            }
        } else {
            let bytes = read_all(&p.file.source).await?;
            if m.oid.as_deref() == Some(git_blob_sha1(&bytes).as_str()) {
                out.unchanged.push(p.file.repo_path.clone());
            } else {
                regular.push((p, bytes));
            }
        }
    }

    if !lfs.is_empty() {
        let objects = hub.lfs_batch(&out.revision, &lfs).await?;
        for p in &lfs {
            let o = objects.iter().find(|o| o.oid == p.sha256).ok_or_else(|| {
                HubError::Hub(format!(
                    "the LFS batch answer does not mention `{}` (oid {})",
                    p.file.repo_path, p.sha256
                ))
            })?;
            if let Some(e) = &o.error {
                return Err(HubError::Hub(format!(
                    "the Hub refused the LFS upload of `{}`: {} (code {})",
                    p.file.repo_path,
                    hub.redact(&e.message),
                    e.code
                )));
            }
            match &o.actions {
                Some(BatchActions {
                    upload: Some(up),
                    verify,
                }) => {
                    tracing::info!("uploading {} ({} bytes, LFS)", p.file.repo_path, p.size);
                    hub.lfs_upload(p, up).await?;
                    if let Some(v) = verify {
                        hub.lfs_verify(p, v).await?;
                    }
                }
                _ => out.lfs_already_stored.push(p.file.repo_path.clone()),
            }
        }
    }

    out.regular_files = regular
        .iter()
        .map(|(p, _)| p.file.repo_path.clone())
        .collect();
    out.lfs_files = lfs.iter().map(|p| p.file.repo_path.clone()).collect();
    if regular.is_empty() && lfs.is_empty() {
        tracing::info!("nothing changed since the last push; no commit made");
        return Ok(out);
    }
    let manifest = retort_store::Manifest::read(run_dir)?;
    let summary = opts.message.clone().unwrap_or_else(|| {
        format!(
            "Upload run `{}` (retort {}, pipeline {})",
            manifest.name,
            manifest.retort_version,
            &manifest.pipeline_hash[..manifest.pipeline_hash.len().min(12)]
        )
    });
    let c = hub.commit(&out.revision, &summary, &regular, &lfs).await?;
    out.commit_oid = Some(c.commit_oid);
    out.commit_url = c.commit_url;
    Ok(out)
}

async fn read_all(s: &Source) -> Result<Vec<u8>, HubError> {
    match s {
        Source::Bytes(b) => Ok(b.clone()),
        Source::File(p) => tokio::fs::read(p).await.map_err(HubError::io(p)),
    }
}

/// Size, sample and sha256 of a file (streamed: a large export is never in memory).
async fn prepare(file: UploadFile) -> Result<Prepared, HubError> {
    match &file.source {
        Source::Bytes(b) => Ok(Prepared {
            size: b.len() as u64,
            sample: b[..b.len().min(512)].to_vec(),
            sha256: crate::gitoid::sha256_hex(b),
            file,
        }),
        Source::File(p) => {
            let path = p.clone();
            let (size, sample, sha256) = tokio::task::spawn_blocking(move || {
                use sha2::{Digest, Sha256};
                use std::io::Read;
                let mut f = std::fs::File::open(&path).map_err(HubError::io(&path))?;
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                let mut sample = Vec::new();
                let mut size = 0u64;
                loop {
                    let n = f.read(&mut buf).map_err(HubError::io(&path))?;
                    if n == 0 {
                        break;
                    }
                    if sample.len() < 512 {
                        let take = (512 - sample.len()).min(n);
                        sample.extend_from_slice(&buf[..take]);
                    }
                    h.update(&buf[..n]);
                    size += n as u64;
                }
                Ok::<_, HubError>((size, sample, hex::encode(h.finalize())))
            })
            .await
            .map_err(|e| HubError::Run(format!("hashing {}: {e}", p.display())))??;
            Ok(Prepared {
                file,
                size,
                sample,
                sha256,
            })
        }
    }
}

/// The Hub's endpoints, with the token attached to its own requests.
struct Hub<'a> {
    http: reqwest::Client,
    endpoint: String,
    repo: &'a str,
    auth: HeaderValue,
    token: &'a Secret,
    token_env: &'a str,
}

impl<'a> Hub<'a> {
    fn new(opts: &'a PushOptions) -> Result<Hub<'a>, HubError> {
        let endpoint = opts.endpoint.trim_end_matches('/').to_string();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(HubError::Usage(format!(
                "HF_ENDPOINT `{endpoint}` is not an http(s) URL (default {DEFAULT_ENDPOINT})"
            )));
        }
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", opts.token.expose())).map_err(|_| {
                HubError::Usage(format!(
                    "${} holds characters an HTTP header cannot carry; paste the token again",
                    opts.token_env
                ))
            })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(concat!("retort/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| HubError::Hub(format!("cannot build the HTTP client: {e}")))?;
        Ok(Hub {
            http,
            endpoint,
            repo: &opts.repo,
            auth,
            token: &opts.token,
            token_env: &opts.token_env,
        })
    }

    /// `text` with every occurrence of the token replaced: servers (or proxies) that
    /// echo the request must not make this module print it.
    fn redact(&self, text: &str) -> String {
        let t = self.token.expose();
        if t.is_empty() {
            text.to_string()
        } else {
            text.replace(t, "[redacted]")
        }
    }

    fn api(&self, rest: &str) -> String {
        format!("{}/api/datasets/{}/{rest}", self.endpoint, self.repo)
    }

    /// A request to the Hub itself, with the token.
    fn hub_request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, self.auth.clone());
        self.http.request(method, url).headers(h)
    }

    async fn send(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, HubError> {
        req.send().await.map_err(|e| {
            HubError::Hub(self.redact(&format!(
                "{what}: cannot reach the Hub at {} ({}); check HF_ENDPOINT and the network",
                self.endpoint,
                e.without_url()
            )))
        })
    }

    /// The error for a non-success answer: what failed, the status, the server's
    /// message (redacted), and what to do.
    async fn refused(&self, what: &str, url: &str, r: reqwest::Response) -> HubError {
        let status = r.status();
        let header_msg = r
            .headers()
            .get("x-error-message")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = r.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .or(header_msg)
            .unwrap_or_else(|| body.chars().take(300).collect());
        let url = url.split('?').next().unwrap_or(url);
        let hint = match status {
            StatusCode::UNAUTHORIZED => format!(
                "the token in ${} was refused: set ${} to a valid Hugging Face token with write access (create one at {}/settings/tokens), or name another variable with --token-env",
                self.token_env, self.token_env, self.endpoint
            ),
            StatusCode::FORBIDDEN => format!(
                "the token in ${} may not write to {}: use a token with write access to that organisation",
                self.token_env, self.repo
            ),
            StatusCode::NOT_FOUND => format!(
                "{} or the revision does not exist at {} (or the token cannot see it)",
                self.repo, self.endpoint
            ),
            _ => "try again; if it persists, check the Hub's status".into(),
        };
        HubError::Hub(self.redact(&format!(
            "{what} failed: HTTP {status} from {url}: {msg}\n  hint: {hint}"
        )))
    }

    async fn json_ok<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &str,
        r: reqwest::Response,
    ) -> Result<T, HubError> {
        if !r.status().is_success() {
            return Err(self.refused(what, url, r).await);
        }
        let body = r.bytes().await.map_err(|e| {
            HubError::Hub(format!("{what}: reading the answer: {}", e.without_url()))
        })?;
        serde_json::from_slice(&body).map_err(|e| {
            HubError::Hub(self.redact(&format!(
                "{what}: the Hub at {} answered something retort cannot read ({e}); is it a Hugging Face Hub?",
                self.endpoint
            )))
        })
    }

    /// Creates the dataset repository; `false` when it already existed.
    async fn create_repo(&self, org: &str, name: &str, private: bool) -> Result<bool, HubError> {
        let url = format!("{}/api/repos/create", self.endpoint);
        let mut body = json!({"name": name, "organization": org, "type": "dataset"});
        if private {
            body["visibility"] = "private".into();
        }
        let r = self
            .send(
                "creating the repository",
                self.hub_request(Method::POST, &url).json(&body),
            )
            .await?;
        match r.status() {
            s if s.is_success() => {
                tracing::info!("created dataset repository {}", self.repo);
                Ok(true)
            }
            StatusCode::CONFLICT => Ok(false),
            _ => Err(self.refused("creating the repository", &url, r).await),
        }
    }

    /// Creates branch `rev` from the default branch; `false` when it existed.
    async fn create_branch(&self, rev: &str) -> Result<bool, HubError> {
        let url = self.api(&format!("branch/{}", quote(rev)));
        let r = self
            .send(
                "creating the branch",
                self.hub_request(Method::POST, &url).json(&json!({})),
            )
            .await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            _ => Err(self
                .refused(&format!("creating branch `{rev}`"), &url, r)
                .await),
        }
    }

    async fn preupload(
        &self,
        rev: &str,
        files: &[Prepared],
    ) -> Result<Vec<PreuploadFile>, HubError> {
        let url = self.api(&format!("preupload/{}", quote(rev)));
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut all = Vec::new();
        for chunk in files.chunks(256) {
            let body = json!({"files": chunk.iter().map(|p| json!({
                "path": p.file.repo_path,
                "sample": b64.encode(&p.sample),
                "size": p.size,
            })).collect::<Vec<_>>()});
            let r = self
                .send(
                    "asking the Hub how to upload",
                    self.hub_request(Method::POST, &url).json(&body),
                )
                .await?;
            let a: PreuploadAnswer = self.json_ok("preupload", &url, r).await?;
            all.extend(a.files);
        }
        Ok(all)
    }

    async fn lfs_batch(
        &self,
        rev: &str,
        files: &[&Prepared],
    ) -> Result<Vec<BatchObject>, HubError> {
        let url = format!(
            "{}/datasets/{}.git/info/lfs/objects/batch",
            self.endpoint, self.repo
        );
        let mut all = Vec::new();
        for chunk in files.chunks(256) {
            let body = json!({
                "operation": "upload",
                "transfers": ["basic", "multipart"],
                "objects": chunk.iter().map(|p| json!({"oid": p.sha256, "size": p.size})).collect::<Vec<_>>(),
                "hash_algo": "sha256",
                "ref": {"name": rev},
            });
            let r = self
                .send(
                    "the LFS batch request",
                    self.hub_request(Method::POST, &url)
                        .header("accept", LFS_JSON)
                        .header(CONTENT_TYPE, LFS_JSON)
                        .body(body.to_string()),
                )
                .await?;
            let a: BatchAnswer = self.json_ok("the LFS batch request", &url, r).await?;
            all.extend(a.objects);
        }
        Ok(all)
    }

    /// The href's URL, against our endpoint when the Hub gave a path.
    fn href(&self, href: &str) -> String {
        if href.starts_with("http://") || href.starts_with("https://") {
            href.to_string()
        } else {
            format!("{}/{}", self.endpoint, href.trim_start_matches('/'))
        }
    }

    /// A byte range of the file as a streamed body.
    async fn body(&self, p: &Prepared, offset: u64, len: u64) -> Result<reqwest::Body, HubError> {
        match &p.file.source {
            Source::Bytes(b) => Ok(reqwest::Body::from(
                b[offset as usize..(offset + len) as usize].to_vec(),
            )),
            Source::File(path) => {
                let mut f = tokio::fs::File::open(path)
                    .await
                    .map_err(HubError::io(path))?;
                f.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(HubError::io(path))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 1 << 20);
                Ok(reqwest::Body::wrap_stream(stream))
            }
        }
    }

    async fn lfs_upload(&self, p: &Prepared, up: &LfsAction) -> Result<(), HubError> {
        let what = format!("uploading `{}`", p.file.repo_path);
        let header = up.header.clone().unwrap_or_default();
        let url = self.href(&up.href);
        let chunk_size = match header.get("chunk_size") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        HubError::Hub(format!("{what}: the Hub gave a chunk_size that is not a positive integer ({v})"))
                    })?,
            ),
        };
        let Some(chunk) = chunk_size else {
            // Basic transfer: one PUT to a pre-signed URL, without our token.
            let r = self
                .send(
                    &what,
                    self.http
                        .put(&url)
                        .header(CONTENT_LENGTH, p.size)
                        .body(self.body(p, 0, p.size).await?),
                )
                .await?;
            if !r.status().is_success() {
                return Err(self.refused(&what, &url, r).await);
            }
            return Ok(());
        };
        // Multipart: numbered part URLs, each `chunk` bytes, then a completion POST.
        let mut parts: Vec<(u64, String)> = header
            .iter()
            .filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v.as_str()?.to_string())))
            .collect();
        parts.sort();
        if parts.len() as u64 != p.size.div_ceil(chunk) {
            return Err(HubError::Hub(format!(
                "{what}: the Hub gave {} part URLs for {} bytes in parts of {chunk}",
                parts.len(),
                p.size
            )));
        }
        let mut etags = Vec::new();
        for (i, (n, part_url)) in parts.iter().enumerate() {
            let off = i as u64 * chunk;
            let len = chunk.min(p.size - off);
            let r = self
                .send(
                    &what,
                    self.http
                        .put(self.href(part_url))
                        .header(CONTENT_LENGTH, len)
                        .body(self.body(p, off, len).await?),
                )
                .await?;
            if !r.status().is_success() {
                return Err(self
                    .refused(&format!("{what} (part {n})"), part_url, r)
                    .await);
            }
            let etag = r
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    HubError::Hub(format!(
                        "{what}: part {n} was stored but the answer has no ETag"
                    ))
                })?
                .to_string();
            etags.push(json!({"partNumber": i + 1, "etag": etag}));
        }
        let r = self
            .send(
                &what,
                self.http
                    .post(&url)
                    .header("accept", LFS_JSON)
                    .header(CONTENT_TYPE, LFS_JSON)
                    .body(json!({"oid": p.sha256, "parts": etags}).to_string()),
            )
            .await?;
        if !r.status().is_success() {
            return Err(self
                .refused(&format!("{what} (completing the parts)"), &url, r)
                .await);
        }
        Ok(())
    }

    async fn lfs_verify(&self, p: &Prepared, v: &LfsAction) -> Result<(), HubError> {
        let url = self.href(&v.href);
        let what = format!("verifying the upload of `{}`", p.file.repo_path);
        let r = self
            .send(
                &what,
                self.hub_request(Method::POST, &url)
                    .json(&json!({"oid": p.sha256, "size": p.size})),
            )
            .await?;
        if !r.status().is_success() {
            return Err(self.refused(&what, &url, r).await);
        }
        Ok(())
    }

    async fn commit(
        &self,
        rev: &str,
        summary: &str,
        regular: &[(&Prepared, Vec<u8>)],
        lfs: &[&Prepared],
    ) -> Result<CommitAnswer, HubError> {
        let url = self.api(&format!("commit/{}", quote(rev)));
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut body = String::new();
        let mut line = |v: serde_json::Value| {
            body.push_str(&v.to_string());
            body.push('\n');
        };
        line(json!({"key": "header", "value": {"summary": summary, "description": ""}}));
        for (p, bytes) in regular {
            line(json!({"key": "file", "value": {
                "content": b64.encode(bytes), "path": p.file.repo_path, "encoding": "base64"}}));
        }
        for p in lfs {
            line(json!({"key": "lfsFile", "value": {
                "path": p.file.repo_path, "algo": "sha256", "oid": p.sha256, "size": p.size}}));
        }
        let r = self
            .send(
                "committing",
                self.hub_request(Method::POST, &url)
                    .header(CONTENT_TYPE, "application/x-ndjson")
                    .body(body),
            )
            .await?;
        self.json_ok("the commit", &url, r).await
    }
}

/// What Python's `quote(s, safe="")` leaves as is: letters, digits and `_.-~`.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// A revision as one URL path segment, as the official client quotes it.
fn quote(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert!(check_repo_id("my-org/my_data.v2").is_ok());
        for bad in ["noslash", "a/b/c", "/x", "a/", "a b/c", "a/..x"] {
            assert!(check_repo_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revisions_are_one_path_segment() {
        assert_eq!(quote("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(quote("main"), "main");
        assert_eq!(quote("my-branch_1.x~"), "my-branch_1.x~");
    }
}
