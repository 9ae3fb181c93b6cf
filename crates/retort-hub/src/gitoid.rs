//! The object ids the Hub compares files by: a regular file's git blob id (sha1 of
//! `blob <size>\0<bytes>`) and an LFS file's sha256. The preupload answer returns the
//! id of the file already at a path; equal ids mean the file is unchanged.

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Git's blob id of `bytes` (what the Hub reports for a regular file).
pub fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

/// The sha256 of `bytes`, hex (an LFS object id).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn blob_id_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            super::git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }
}
