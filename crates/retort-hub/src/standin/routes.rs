//! The stand-in's endpoints, each answering as the Hub does for the fields the
//! official client and `retort push` read:
//!
//! | method, path | does |
//! |---|---|
//! | `POST /api/repos/create` | creates a repository with an initial `.gitattributes` commit; 409 when it exists |
//! | `POST /api/validate-yaml` | parses a README's front matter; 400 with `errors` when it is not YAML |
//! | `GET /api/{type}s/{org}/{name}[/revision/{rev}]` | repository info (`sha`, `siblings`) |
//! | `POST /api/{type}s/{org}/{name}/preupload/{rev}` | `uploadMode` by size, `oid` of the file at each path |
//! | `POST /api/{type}s/{org}/{name}/branch/{branch}` | a branch from `main` (or `startingPoint`); 409 when it exists |
//! | `POST /api/{type}s/{org}/{name}/commit/{rev}` | the ndjson commit: `header`, `file`, `lfsFile`, `deletedFile` |
//! | `POST /[{type}s/]{org}/{name}.git/info/lfs/objects/batch` | git-lfs batch: tickets for missing objects, none for stored ones |
//! | `PUT /standin-lfs/{ticket}` | basic transfer (no token, like a pre-signed URL); checks size and sha256 |
//! | `PUT /standin-lfs/{ticket}/part/{n}`, `POST /standin-lfs/{ticket}` | multipart parts (ETag = part sha256) and completion |
//! | `POST /standin-lfs-verify/{type}/{org}/{name}` | LFS verify |
//!
//! Every Hub endpoint except the upload hrefs needs `Authorization: Bearer <token>`;
//! a missing or unknown token is a 401 whose message never repeats what was sent.
//!
//! Size: ~770 lines. One handler per Hub endpoint the official client and `retort push`
//! call, sharing the store and the token check; kept as one table so it reads against
//! `hf_api.py` endpoint by endpoint.

// The error of a handler's helper is the HTTP answer itself, built once per request.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::store::{Commit, Entry, RepoMeta, GITATTRIBUTES};
use super::{State, Ticket};
use crate::gitoid::{git_blob_sha1, sha256_hex};

type Resp = Response<Full<Bytes>>;

fn json_resp(status: StatusCode, v: Value) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("static response parts")
}

fn error(status: StatusCode, msg: &str) -> Resp {
    let mut r = json_resp(status, json!({ "error": msg }));
    if let Ok(v) = hyper::header::HeaderValue::from_str(msg) {
        r.headers_mut().insert("x-error-message", v);
    }
    r
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

/// Serves one request.
pub(crate) async fn handle(
    st: Arc<State>,
    req: Request<Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let authorized = st.cfg.tokens.iter().any(|t| {
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            == Some(t.as_str())
    });
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                &format!("reading the body: {e}"),
            ))
        }
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let hit = |name: &'static str| {
        *st.hits.lock().expect("hits lock").entry(name).or_default() += 1;
    };
    // Upload hrefs are pre-signed: the ticket is the credential.
    if segs.first() == Some(&"standin-lfs") {
        return Ok(match (&method, &segs[1..]) {
            (&Method::PUT, [ticket]) => {
                hit("lfs_put");
                lfs_put(&st, ticket, &body)
            }
            (&Method::PUT, [ticket, "part", n]) => {
                hit("lfs_part");
                lfs_part(&st, ticket, n, &body)
            }
            (&Method::POST, [ticket]) => {
                hit("lfs_complete");
                lfs_complete(&st, ticket, &body)
            }
            _ => error(StatusCode::NOT_FOUND, "no such upload"),
        });
    }
    if !authorized {
        hit("unauthorized");
        return Ok(error(
            StatusCode::UNAUTHORIZED,
            "Invalid credentials in Authorization header",
        ));
    }
    let r = match (&method, segs.as_slice()) {
        (&Method::POST, ["api", "repos", "create"]) => {
            hit("create");
            create_repo(&st, &body)
        }
        (&Method::POST, ["api", "validate-yaml"]) => {
            hit("validate_yaml");
            validate_yaml(&body)
        }
        (&Method::GET, ["api", t, org, name]) => {
            hit("info");
            info(&st, t, &format!("{org}/{name}"), "main")
        }
        (&Method::GET, ["api", t, org, name, "revision", rev]) => {
            hit("info");
            info(&st, t, &format!("{org}/{name}"), &decode(rev))
        }
        (&Method::POST, ["api", t, org, name, "preupload", rev]) => {
            hit("preupload");
            preupload(&st, t, &format!("{org}/{name}"), &decode(rev), &body)
        }
        (&Method::POST, ["api", t, org, name, "branch", b]) => {
            hit("branch");
            branch(&st, t, &format!("{org}/{name}"), &decode(b), &body)
        }
        (&Method::POST, ["api", t, org, name, "commit", rev]) => {
            hit("commit");
            commit(&st, t, &format!("{org}/{name}"), &decode(rev), &body)
        }
        (&Method::POST, ["standin-lfs-verify", kind, org, name]) => {
            hit("lfs_verify");
            lfs_verify(&st, kind, &format!("{org}/{name}"), &body)
        }
        (&Method::POST, rest) if rest.ends_with(&["info", "lfs", "objects", "batch"]) => {
            hit("lfs_batch");
            let repo_segs = &rest[..rest.len() - 4];
            match repo_segs {
                ["datasets", org, name] => lfs_batch(&st, "dataset", org, name, &body),
                ["spaces", org, name] => lfs_batch(&st, "space", org, name, &body),
                [org, name] => lfs_batch(&st, "model", org, name, &body),
                _ => error(StatusCode::NOT_FOUND, "no such repository"),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("the stand-in has no {method} {path}"),
        ),
    };
    Ok(r)
}

/// `datasets` → `dataset`, `models` → `model`.
fn kind(t: &str) -> Option<&str> {
    match t {
        "datasets" => Some("dataset"),
        "models" => Some("model"),
        "spaces" => Some("space"),
        _ => None,
    }
}

fn parse(body: &[u8]) -> Result<Value, Resp> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}")))
}

fn internal(e: String) -> Resp {
    error(StatusCode::INTERNAL_SERVER_ERROR, &e)
}

fn new_oid(parts: &[&str]) -> String {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let mut s = parts.join("\n");
    s.push_str(&now.to_string());
    sha256_hex(s.as_bytes())[..40].to_string()
}

fn create_repo(st: &State, body: &[u8]) -> Resp {
    let v = match parse(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(name) = v.get("name").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "name is required");
    };
    let org = v
        .get("organization")
        .and_then(Value::as_str)
        .unwrap_or(&st.cfg.user);
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("model");
    if !matches!(kind, "model" | "dataset") {
        return error(
            StatusCode::BAD_REQUEST,
            "the stand-in stores models and datasets",
        );
    }
    let private = v.get("visibility").and_then(Value::as_str) == Some("private")
        || v.get("private").and_then(Value::as_bool) == Some(true);
    let repo = format!("{org}/{name}");
    let _w = st.write.lock().expect("write lock");
    match st.store.repo(kind, &repo) {
        Ok(Some(_)) => {
            // The Hub's 409 carries the url too: the official client reads it with
            // exist_ok=True.
            let prefix = if kind == "model" { "" } else { "datasets/" };
            let mut r = error(
                StatusCode::CONFLICT,
                &format!("You already created this {kind} repo"),
            );
            *r.body_mut() = Full::new(Bytes::from(
                json!({"error": format!("You already created this {kind} repo"),
                       "url": format!("{}/{prefix}{repo}", st.base)})
                .to_string(),
            ));
            return r;
        }
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    let bytes = GITATTRIBUTES.as_bytes();
    let entry = Entry {
        lfs: false,
        sha256: sha256_hex(bytes),
        git_oid: git_blob_sha1(bytes),
        size: bytes.len() as u64,
    };
    if let Err(e) = st
        .store
        .write(&st.store.object(false, &entry.sha256), bytes)
    {
        return internal(e);
    }
    let c = Commit {
        oid: new_oid(&[&repo, "initial commit"]),
        parent: None,
        summary: "initial commit".into(),
        description: String::new(),
        date: chrono::Utc::now().to_rfc3339(),
        tree: BTreeMap::from([(".gitattributes".to_string(), entry)]),
    };
    let meta = RepoMeta {
        visibility: if private { "private" } else { "public" }.into(),
        branches: BTreeMap::from([("main".to_string(), c.oid.clone())]),
    };
    if let Err(e) = st
        .store
        .save_commit(kind, &repo, &c)
        .and_then(|_| st.store.save_repo(kind, &repo, &meta))
    {
        return internal(e);
    }
    let prefix = if kind == "model" { "" } else { "datasets/" };
    json_resp(
        StatusCode::OK,
        json!({"url": format!("{}/{prefix}{repo}", st.base), "name": repo, "id": repo}),
    )
}

fn validate_yaml(body: &[u8]) -> Resp {
    let v = match parse(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let content = v.get("content").and_then(Value::as_str).unwrap_or("");
    if let Some(rest) = content.strip_prefix("---\n") {
        let Some(end) = rest.find("\n---") else {
            return json_resp(
                StatusCode::BAD_REQUEST,
                json!({"errors": [{"message": "front matter is not closed by ---"}], "warnings": []}),
            );
        };
        if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(&rest[..end]) {
            return json_resp(
                StatusCode::BAD_REQUEST,
                json!({"errors": [{"message": format!("invalid YAML: {e}")}], "warnings": []}),
            );
        }
    }
    json_resp(StatusCode::OK, json!({"errors": [], "warnings": []}))
}

fn head_or_404(st: &State, t: &str, repo: &str, rev: &str) -> Result<(String, Commit), Resp> {
    let Some(kind) = kind(t) else {
        return Err(error(StatusCode::NOT_FOUND, "Repository not found"));
    };
    match st.store.repo(kind, repo) {
        Ok(Some(_)) => {}
        Ok(None) => return Err(error(StatusCode::NOT_FOUND, "Repository not found")),
        Err(e) => return Err(internal(e)),
    }
    match st.store.head(kind, repo, rev) {
        Ok(Some(c)) => Ok((kind.to_string(), c)),
        Ok(None) => Err(error(
            StatusCode::NOT_FOUND,
            &format!("Invalid rev id: {rev}"),
        )),
        Err(e) => Err(internal(e)),
    }
}

fn info(st: &State, t: &str, repo: &str, rev: &str) -> Resp {
    let (_, c) = match head_or_404(st, t, repo, rev) {
        Ok(x) => x,
        Err(r) => return r,
    };
    json_resp(
        StatusCode::OK,
        json!({
            "id": repo, "sha": c.oid, "private": false,
            "siblings": c.tree.keys().map(|k| json!({"rfilename": k})).collect::<Vec<_>>(),
        }),
    )
}

fn preupload(st: &State, t: &str, repo: &str, rev: &str, body: &[u8]) -> Resp {
    let (_, c) = match head_or_404(st, t, repo, rev) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let v = match parse(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(files) = v.get("files").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "files is required");
    };
    let mut out = Vec::new();
    for f in files {
        let (Some(path), Some(size)) = (
            f.get("path").and_then(Value::as_str),
            f.get("size").and_then(Value::as_u64),
        ) else {
            return error(StatusCode::BAD_REQUEST, "each file needs path and size");
        };
        if f.get("sample").and_then(Value::as_str).is_none() {
            return error(StatusCode::BAD_REQUEST, "each file needs a base64 sample");
        }
        let mode = if size >= st.cfg.lfs_threshold {
            "lfs"
        } else {
            "regular"
        };
        out.push(json!({
            "path": path,
            "uploadMode": mode,
            "shouldIgnore": false,
            "oid": c.tree.get(path).map(|e| e.oid().to_string()),
        }));
    }
    json_resp(StatusCode::OK, json!({ "files": out, "commitOid": c.oid }))
}

fn branch(st: &State, t: &str, repo: &str, name: &str, body: &[u8]) -> Resp {
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        match parse(body) {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
    let from = v
        .get("startingPoint")
        .and_then(Value::as_str)
        .unwrap_or("main")
        .to_string();
    let _w = st.write.lock().expect("write lock");
    let (kind, c) = match head_or_404(st, t, repo, &from) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut meta = match st.store.repo(&kind, repo) {
        Ok(Some(m)) => m,
        Ok(None) => return error(StatusCode::NOT_FOUND, "Repository not found"),
        Err(e) => return internal(e),
    };
    if meta.branches.contains_key(name) {
        return error(
            StatusCode::CONFLICT,
            &format!("Reference already exists: refs/heads/{name}"),
        );
    }
    meta.branches.insert(name.to_string(), c.oid);
    if let Err(e) = st.store.save_repo(&kind, repo, &meta) {
        return internal(e);
    }
    json_resp(StatusCode::OK, json!({}))
}

fn commit(st: &State, t: &str, repo: &str, rev: &str, body: &[u8]) -> Resp {
    let _w = st.write.lock().expect("write lock");
    let (kind, parent) = match head_or_404(st, t, repo, rev) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return error(StatusCode::BAD_REQUEST, "the commit body is not UTF-8"),
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut summary = None;
    let mut description = String::new();
    let mut tree = parent.tree.clone();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("ndjson line {}: {e}", i + 1),
                )
            }
        };
        let val = &v["value"];
        let path = val.get("path").and_then(Value::as_str).map(str::to_string);
        match v.get("key").and_then(Value::as_str) {
            Some("header") => {
                summary = val
                    .get("summary")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                description = val
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
            }
            Some("file") => {
                let (Some(path), Some(content)) =
                    (path, val.get("content").and_then(Value::as_str))
                else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("line {}: a file needs path and content", i + 1),
                    );
                };
                if val.get("encoding").and_then(Value::as_str) != Some("base64") {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "the stand-in takes base64 file content",
                    );
                }
                let bytes = match b64.decode(content) {
                    Ok(b) => b,
                    Err(e) => {
                        return error(StatusCode::BAD_REQUEST, &format!("line {}: {e}", i + 1))
                    }
                };
                let e = Entry {
                    lfs: false,
                    sha256: sha256_hex(&bytes),
                    git_oid: git_blob_sha1(&bytes),
                    size: bytes.len() as u64,
                };
                if let Err(err) = st.store.write(&st.store.object(false, &e.sha256), &bytes) {
                    return internal(err);
                }
                tree.insert(path, e);
            }
            Some("lfsFile") => {
                let (Some(path), Some(oid)) = (path, val.get("oid").and_then(Value::as_str)) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("line {}: an lfsFile needs path and oid", i + 1),
                    );
                };
                if val.get("algo").and_then(Value::as_str) != Some("sha256") {
                    return error(StatusCode::BAD_REQUEST, "lfsFile algo must be sha256");
                }
                let obj = st.store.object(true, oid);
                let Ok(meta) = std::fs::metadata(&obj) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("LFS object {oid} for {path} was never uploaded"),
                    );
                };
                if let Some(size) = val.get("size").and_then(Value::as_u64) {
                    if size != meta.len() {
                        return error(
                            StatusCode::BAD_REQUEST,
                            &format!("{path}: size {size} does not match the stored object"),
                        );
                    }
                }
                let bytes = match std::fs::read(&obj) {
                    Ok(b) => b,
                    Err(e) => return internal(e.to_string()),
                };
                tree.insert(
                    path,
                    Entry {
                        lfs: true,
                        sha256: oid.to_string(),
                        git_oid: git_blob_sha1(&bytes),
                        size: meta.len(),
                    },
                );
            }
            Some("deletedFile") => {
                if let Some(p) = path {
                    tree.remove(&p);
                }
            }
            Some("deletedFolder") => {
                if let Some(p) = path {
                    let prefix = format!("{}/", p.trim_end_matches('/'));
                    tree.retain(|k, _| !k.starts_with(&prefix));
                }
            }
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("line {}: unknown key {other:?}", i + 1),
                )
            }
        }
    }
    let Some(summary) = summary else {
        return error(StatusCode::BAD_REQUEST, "the commit has no header line");
    };
    let c = Commit {
        oid: new_oid(&[repo, &parent.oid, &summary]),
        parent: Some(parent.oid.clone()),
        summary,
        description,
        date: chrono::Utc::now().to_rfc3339(),
        tree,
    };
    let mut meta = match st.store.repo(&kind, repo) {
        Ok(Some(m)) => m,
        Ok(None) => return error(StatusCode::NOT_FOUND, "Repository not found"),
        Err(e) => return internal(e),
    };
    // A commit to a revision that is a commit oid (not a branch) is refused, as on the Hub.
    if !meta.branches.contains_key(rev) {
        return error(StatusCode::BAD_REQUEST, &format!("{rev} is not a branch"));
    }
    meta.branches.insert(rev.to_string(), c.oid.clone());
    if let Err(e) = st
        .store
        .save_commit(&kind, repo, &c)
        .and_then(|_| st.store.save_repo(&kind, repo, &meta))
    {
        return internal(e);
    }
    let prefix = if kind == "model" { "" } else { "datasets/" };
    json_resp(
        StatusCode::OK,
        json!({
            "success": true,
            "commitOid": c.oid,
            "commitUrl": format!("{}/{prefix}{repo}/commit/{}", st.base, c.oid),
            "pullRequestUrl": null,
        }),
    )
}

fn lfs_batch(st: &State, kind: &str, org: &str, name: &str, body: &[u8]) -> Resp {
    let name = name.strip_suffix(".git").unwrap_or(name);
    let repo = format!("{org}/{name}");
    match st.store.repo(kind, &repo) {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, "Repository not found"),
        Err(e) => return internal(e),
    }
    let v = match parse(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if v.get("operation").and_then(Value::as_str) != Some("upload") {
        return error(
            StatusCode::BAD_REQUEST,
            "only the upload operation is supported",
        );
    }
    let Some(objects) = v.get("objects").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "objects is required");
    };
    let multipart_ok = v
        .get("transfers")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|x| x == "multipart"));
    let mut out = Vec::new();
    for o in objects {
        let (Some(oid), Some(size)) = (
            o.get("oid").and_then(Value::as_str),
            o.get("size").and_then(Value::as_u64),
        ) else {
            return error(StatusCode::BAD_REQUEST, "each object needs oid and size");
        };
        if oid.len() != 64 || !oid.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push(json!({"oid": oid, "size": size, "error": {"code": 422, "message": "oid is not a sha256"}}));
            continue;
        }
        if st.store.object(true, oid).exists() {
            out.push(json!({"oid": oid, "size": size, "authenticated": true}));
            continue;
        }
        let n = st.next_ticket.fetch_add(1, Ordering::SeqCst);
        let ticket =
            sha256_hex(format!("{oid}{n}{}", chrono::Utc::now()).as_bytes())[..32].to_string();
        st.tickets.lock().expect("tickets lock").insert(
            ticket.clone(),
            Ticket {
                oid: oid.to_string(),
                size,
            },
        );
        let href = format!("{}/standin-lfs/{ticket}", st.base);
        let verify =
            json!({"href": format!("{}/standin-lfs-verify/{kind}/{repo}", st.base), "header": {}});
        let upload = match st.cfg.multipart_chunk {
            Some(chunk) if multipart_ok && size > chunk => {
                let mut header = serde_json::Map::new();
                header.insert("chunk_size".into(), json!(chunk.to_string()));
                for i in 1..=size.div_ceil(chunk) {
                    header.insert(i.to_string(), json!(format!("{href}/part/{i}")));
                }
                json!({"href": href, "header": header})
            }
            _ => json!({"href": href}),
        };
        out.push(json!({"oid": oid, "size": size, "authenticated": true,
            "actions": {"upload": upload, "verify": verify}}));
    }
    let mut r = json_resp(
        StatusCode::OK,
        json!({"transfer": "basic", "objects": out, "hash_algo": "sha256"}),
    );
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/vnd.git-lfs+json"),
    );
    r
}

fn ticket(st: &State, t: &str) -> Option<Ticket> {
    st.tickets.lock().expect("tickets lock").get(t).cloned()
}

fn store_object(st: &State, t: &str, tk: &Ticket, bytes: &[u8]) -> Resp {
    if bytes.len() as u64 != tk.size {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("expected {} bytes, got {}", tk.size, bytes.len()),
        );
    }
    if sha256_hex(bytes) != tk.oid {
        return error(StatusCode::BAD_REQUEST, "the bytes do not hash to the oid");
    }
    if let Err(e) = st.store.write(&st.store.object(true, &tk.oid), bytes) {
        return internal(e);
    }
    st.tickets.lock().expect("tickets lock").remove(t);
    json_resp(StatusCode::OK, json!({}))
}

fn lfs_put(st: &State, t: &str, body: &[u8]) -> Resp {
    match ticket(st, t) {
        Some(tk) => store_object(st, t, &tk, body),
        None => error(StatusCode::FORBIDDEN, "unknown or used upload ticket"),
    }
}

fn lfs_part(st: &State, t: &str, n: &str, body: &[u8]) -> Resp {
    if ticket(st, t).is_none() {
        return error(StatusCode::FORBIDDEN, "unknown or used upload ticket");
    }
    let Ok(n) = n.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, "part number is not a number");
    };
    let p = st.store.uploads().join(format!("{t}.part{n}"));
    if let Err(e) = st.store.write(&p, body) {
        return internal(e);
    }
    let mut r = json_resp(StatusCode::OK, json!({}));
    r.headers_mut().insert(
        "etag",
        hyper::header::HeaderValue::from_str(&format!("\"{}\"", sha256_hex(body)))
            .expect("hex is a header value"),
    );
    r
}

fn lfs_complete(st: &State, t: &str, body: &[u8]) -> Resp {
    let Some(tk) = ticket(st, t) else {
        return error(StatusCode::FORBIDDEN, "unknown or used upload ticket");
    };
    let v = match parse(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if v.get("oid").and_then(Value::as_str) != Some(tk.oid.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "completion oid does not match the upload",
        );
    }
    let Some(parts) = v.get("parts").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "parts is required");
    };
    let mut all = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as u64 + 1;
        if p.get("partNumber").and_then(Value::as_u64) != Some(n) {
            return error(
                StatusCode::BAD_REQUEST,
                "parts must be numbered 1, 2, … in order",
            );
        }
        let path = st.store.uploads().join(format!("{t}.part{n}"));
        let Ok(bytes) = std::fs::read(&path) else {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("part {n} was never uploaded"),
            );
        };
        if p.get("etag").and_then(Value::as_str)
            != Some(format!("\"{}\"", sha256_hex(&bytes)).as_str())
        {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("part {n}: etag does not match"),
            );
        }
        all.extend_from_slice(&bytes);
    }
    let r = store_object(st, t, &tk, &all);
    if r.status().is_success() {
        for i in 1..=parts.len() {
            let _ = std::fs::remove_file(st.store.uploads().join(format!("{t}.part{i}")));
        }
    }
    r
}

fn lfs_verify(st: &State, _kind: &str, _repo: &str, body: &[u8]) -> Resp {
    let v = match parse(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (Some(oid), Some(size)) = (
        v.get("oid").and_then(Value::as_str),
        v.get("size").and_then(Value::as_u64),
    ) else {
        return error(StatusCode::BAD_REQUEST, "verify needs oid and size");
    };
    match std::fs::metadata(st.store.object(true, oid)) {
        Ok(m) if m.len() == size => json_resp(StatusCode::OK, json!({})),
        Ok(_) => error(StatusCode::BAD_REQUEST, "stored object has another size"),
        Err(_) => error(StatusCode::NOT_FOUND, "object not found"),
    }
}
