//! The stand-in's storage on disk: repositories, branches, commits and file objects.
//!
//! ```text
//! ROOT/objects/git/<sha256>         bytes of files committed inline (regular)
//! ROOT/objects/lfs/<sha256>         bytes of files uploaded through LFS
//! ROOT/uploads/<ticket>.part<n>     multipart parts until completed
//! ROOT/repos/<type>s/<org>/<name>/repo.json          RepoMeta: visibility, branches
//! ROOT/repos/<type>s/<org>/<name>/commits/<oid>.json Commit: parent, message, tree
//! ```
//!
//! A commit stores its whole tree (path → entry), so reading a revision is one file.
//! Tests read it through [`Store`] to compare what two uploads stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The default `.gitattributes` a new repository starts with, as the Hub makes it.
pub const GITATTRIBUTES: &str = "*.arrow filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.zip filter=lfs diff=lfs merge=lfs -text\n";

/// One file of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Stored through LFS (`lfsFile`), not inline.
    pub lfs: bool,
    /// sha256 of the bytes (the object's name).
    pub sha256: String,
    /// git blob sha1 (what the Hub reports as a regular file's oid).
    pub git_oid: String,
    /// Bytes.
    pub size: u64,
}

impl Entry {
    /// The oid the preupload answer reports: sha256 for LFS, git blob id otherwise.
    pub fn oid(&self) -> &str {
        if self.lfs {
            &self.sha256
        } else {
            &self.git_oid
        }
    }
}

/// One commit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Commit {
    /// 40 hex digits.
    pub oid: String,
    /// Previous commit on the branch it was made on.
    pub parent: Option<String>,
    /// Commit title.
    pub summary: String,
    /// Commit description.
    pub description: String,
    /// RFC 3339 time.
    pub date: String,
    /// The whole tree after the commit.
    pub tree: BTreeMap<String, Entry>,
}

/// A repository's metadata.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RepoMeta {
    /// `private` or `public`.
    pub visibility: String,
    /// Branch → head commit.
    pub branches: BTreeMap<String, String>,
}

/// The store at a root directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

impl Store {
    /// The store at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn repo_dir(&self, kind: &str, repo: &str) -> PathBuf {
        self.root.join("repos").join(format!("{kind}s")).join(repo)
    }

    /// An object's path (`lfs` or `git` namespace).
    pub fn object(&self, lfs: bool, sha256: &str) -> PathBuf {
        self.root
            .join("objects")
            .join(if lfs { "lfs" } else { "git" })
            .join(sha256)
    }

    /// Where multipart parts wait.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Writes `bytes` under a temp name and renames it into place.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| io(p, e))?;
        }
        let tmp = path.with_extension("tmp-standin");
        std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))
    }

    /// The repository's metadata, if it exists.
    pub fn repo(&self, kind: &str, repo: &str) -> Result<Option<RepoMeta>, String> {
        let p = self.repo_dir(kind, repo).join("repo.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| format!("{}: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p, e)),
        }
    }

    /// Saves the repository's metadata.
    pub fn save_repo(&self, kind: &str, repo: &str, meta: &RepoMeta) -> Result<(), String> {
        let p = self.repo_dir(kind, repo).join("repo.json");
        self.write(&p, &serde_json::to_vec_pretty(meta).expect("plain data"))
    }

    /// A commit by oid.
    pub fn commit(&self, kind: &str, repo: &str, oid: &str) -> Result<Commit, String> {
        let p = self
            .repo_dir(kind, repo)
            .join("commits")
            .join(format!("{oid}.json"));
        let b = std::fs::read(&p).map_err(|e| io(&p, e))?;
        serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// Saves a commit.
    pub fn save_commit(&self, kind: &str, repo: &str, c: &Commit) -> Result<(), String> {
        let p = self
            .repo_dir(kind, repo)
            .join("commits")
            .join(format!("{}.json", c.oid));
        self.write(&p, &serde_json::to_vec_pretty(c).expect("plain data"))
    }

    /// The head commit of a branch (or a commit oid), if both exist.
    pub fn head(&self, kind: &str, repo: &str, rev: &str) -> Result<Option<Commit>, String> {
        let Some(meta) = self.repo(kind, repo)? else {
            return Ok(None);
        };
        let oid = match meta.branches.get(rev) {
            Some(o) => o.clone(),
            None if rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit()) => {
                rev.to_string()
            }
            None => return Ok(None),
        };
        self.commit(kind, repo, &oid).map(Some)
    }

    /// Every commit of a revision, newest first.
    pub fn history(&self, kind: &str, repo: &str, rev: &str) -> Result<Vec<Commit>, String> {
        let mut out = Vec::new();
        let mut next = self.head(kind, repo, rev)?;
        while let Some(c) = next {
            next = match &c.parent {
                Some(p) => Some(self.commit(kind, repo, p)?),
                None => None,
            };
            out.push(c);
        }
        Ok(out)
    }

    /// A file's bytes at a revision.
    pub fn read(&self, kind: &str, repo: &str, rev: &str, path: &str) -> Result<Vec<u8>, String> {
        let c = self
            .head(kind, repo, rev)?
            .ok_or_else(|| format!("{repo}@{rev}: no such revision"))?;
        let e = c
            .tree
            .get(path)
            .ok_or_else(|| format!("{repo}@{rev}: no file {path}"))?;
        let p = self.object(e.lfs, &e.sha256);
        std::fs::read(&p).map_err(|e| io(&p, e))
    }
}
