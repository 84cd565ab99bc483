//! One root URL holds a whole network (SPEC 2): a local directory (the
//! embedded default), `memory://` for tests, or `s3://bucket/prefix` configured
//! from the usual `AWS_*` variables.
//!
//! Credentials for S3 come from the environment only: static keys, a web
//! identity token, or container credentials. The cloud instance-metadata
//! endpoint is used only when `AWS_METADATA_ENDPOINT` names it, so a
//! machine without credentials gets an error that says what to set instead
//! of a minute of retries against an address that is not ours.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use url::Url;

use crate::{Error, Result};

/// A network's root: an object store plus the prefix all layout paths hang from.
#[derive(Debug, Clone)]
pub struct Store {
    url: Url,
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    who: &'static str,
}

/// How long one store request may keep retrying transient faults before the
/// command gives up with an error (override: `FACEBLOCK_RETRY_TIMEOUT_SECS`).
pub fn retry_config() -> RetryConfig {
    let secs = std::env::var("FACEBLOCK_RETRY_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(60);
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: Duration::from_secs(secs),
    }
}

/// Whether an S3 builder has a way to sign requests other than the instance
/// metadata endpoint (which object_store falls back to when it has none).
fn has_credentials(b: &AmazonS3Builder) -> bool {
    use AmazonS3ConfigKey as K;
    let set = |k: K| b.get_config_value(&k).is_some_and(|v| !v.trim().is_empty());
    set(K::AccessKeyId)
        || set(K::SecretAccessKey)
        || (set(K::WebIdentityTokenFile) && set(K::RoleArn))
        || set(K::ContainerCredentialsRelativeUri)
        || (set(K::ContainerCredentialsFullUri) && set(K::ContainerAuthorizationTokenFile))
        || set(K::MetadataEndpoint)
        || b.get_config_value(&K::SkipSignature)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether the store refused a request for lack of permission. S3 deletes
/// go through the bulk DeleteObjects call, which answers 200 and reports a
/// refusal per key; object_store passes that on as a generic error whose
/// text carries S3's code (its error type is private), hence the text match.
fn denied(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => true,
        object_store::Error::Generic { source, .. } => {
            source.to_string().contains("(code: AccessDenied)")
        }
        _ => false,
    }
}

fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static M: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

impl Store {
    /// Opens a store from a URL or a plain path. `memory://NAME` stores live as
    /// long as the process and are shared by every `open` of the same URL.
    pub fn open(location: &str) -> Result<Self> {
        Self::open_with(location, &[])
    }

    /// Like [`Store::open`], with S3 settings that override the `AWS_*`
    /// environment (keys as object_store names them, e.g. `aws_endpoint`).
    pub fn open_with(location: &str, options: &[(&str, &str)]) -> Result<Self> {
        let bad = |reason: String| Error::StoreUrl {
            url: location.to_string(),
            reason,
        };
        let location = location.trim();
        if location.is_empty() {
            return Err(bad(
                "it is empty; pass --store or set FACEBLOCK_STORE".into()
            ));
        }
        let looks_like_url = location.contains("://");
        if !looks_like_url {
            let p = std::path::Path::new(location);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir()
                    .map_err(|e| bad(e.to_string()))?
                    .join(p)
            };
            let url = Url::from_directory_path(&abs)
                .map_err(|_| bad("not a usable directory path".into()))?;
            return Self::open_url(url, location, options);
        }
        let url = Url::parse(location).map_err(|e| bad(e.to_string()))?;
        Self::open_url(url, location, options)
    }

    fn open_url(mut url: Url, original: &str, options: &[(&str, &str)]) -> Result<Self> {
        let bad = |reason: String| Error::StoreUrl {
            url: original.to_string(),
            reason,
        };
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        let prefix = Path::from_url_path(url.path()).map_err(|e| bad(e.to_string()))?;
        let inner: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|_| bad("not a local path".into()))?;
                if dir.exists() && !dir.is_dir() {
                    return Err(bad(format!("{} is a file, not a directory", dir.display())));
                }
                Arc::new(LocalFileSystem::new().with_automatic_cleanup(true))
            }
            "memory" => {
                let key = format!("{}{}", url.host_str().unwrap_or(""), url.path());
                let mut m = memory_stores().lock().expect("memory store registry");
                m.entry(key)
                    .or_insert_with(|| Arc::new(InMemory::new()))
                    .clone()
            }
            "s3" | "s3a" => {
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("an s3 URL names a bucket: s3://bucket/prefix".into()))?
                    .to_string();
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_retry(retry_config());
                for (k, v) in options {
                    let key = k
                        .parse::<object_store::aws::AmazonS3ConfigKey>()
                        .map_err(|e| bad(e.to_string()))?;
                    b = b.with_config(key, *v);
                }
                if !has_credentials(&b) {
                    return Err(Error::NoCredentials {
                        url: original.to_string(),
                    });
                }
                let s3 = b.build().map_err(|e| bad(e.to_string()))?;
                Arc::new(s3)
            }
            other => {
                return Err(bad(format!(
                "unsupported scheme '{other}': use a directory path, file://, memory:// or s3://"
            )))
            }
        };
        Ok(Self {
            url,
            inner,
            prefix,
            who: "client",
        })
    }

    /// Names who uses this store ("peer", "coordinator") in the errors
    /// that tell them to check their credentials.
    pub fn acting_as(mut self, who: &'static str) -> Self {
        self.who = who;
        self
    }

    /// Wraps an existing object store (tests, fault injection).
    pub fn from_parts(url: Url, inner: Arc<dyn ObjectStore>) -> Result<Self> {
        let prefix = Path::from_url_path(url.path()).map_err(|e| Error::StoreUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            url,
            inner,
            prefix,
            who: "client",
        })
    }

    /// The root URL, with a trailing slash.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The object store, rooted at the bucket (or `/`), as Delta Lake wants it.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// The URL of a layout path, for Delta Lake table locations.
    pub fn url_of(&self, rel: &str) -> Url {
        self.url
            .join(rel)
            .expect("layout paths are valid URL paths")
    }

    /// The local file behind a layout path, for stores on a local directory:
    /// lets bulk readers skip the async machinery.
    pub fn local_path(&self, rel: &str) -> Option<std::path::PathBuf> {
        if self.url.scheme() != "file" {
            return None;
        }
        let mut p = self.url.to_file_path().ok()?;
        p.extend(rel.split('/').filter(|s| !s.is_empty()));
        Some(p)
    }

    /// The absolute object path of a layout path.
    pub fn path(&self, rel: &str) -> Path {
        let mut parts: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        parts.extend(rel.split('/').filter(|s| !s.is_empty()).map(str::to_string));
        Path::from_iter(parts)
    }

    /// The layout path of an absolute object path under this root.
    pub fn relative(&self, p: &Path) -> String {
        let n = self.prefix.parts().count();
        p.parts()
            .skip(n)
            .map(|s| s.as_ref().to_string())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A failed request on `rel`; `op` ("reading", "writing", ...) names
    /// it when the store refused it for lack of permission, which no retry
    /// can fix (object_store retries only server errors and timeouts).
    fn err(&self, op: &'static str, rel: &str, source: object_store::Error) -> Error {
        let path = format!("{}{}", self.url, rel);
        if denied(&source) {
            return Error::AccessDenied {
                op,
                path,
                who: self.who,
                source: Box::new(source),
            };
        }
        Error::Store { path, source }
    }

    /// Reads a whole object.
    pub async fn get(&self, rel: &str) -> Result<Bytes> {
        let r = self.inner.get(&self.path(rel)).await;
        match r {
            Ok(g) => g.bytes().await.map_err(|e| self.err("reading", rel, e)),
            Err(e) => Err(self.err("reading", rel, e)),
        }
    }

    /// Reads a whole object, `None` when it is not there.
    pub async fn get_opt(&self, rel: &str) -> Result<Option<Bytes>> {
        match self.inner.get(&self.path(rel)).await {
            Ok(g) => Ok(Some(
                g.bytes().await.map_err(|e| self.err("reading", rel, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("reading", rel, e)),
        }
    }

    /// Writes a whole object in one PUT (replacing any previous one).
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<()> {
        self.inner
            .put(&self.path(rel), PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| self.err("writing", rel, e))?;
        Ok(())
    }

    /// Writes an object only if none exists (a conditional PUT); `false` when
    /// another writer got there first.
    pub async fn put_if_absent(&self, rel: &str, bytes: Bytes) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&self.path(rel), PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.err("writing", rel, e)),
        }
    }

    /// Lists every object under a layout folder (recursively).
    ///
    /// From a local directory whose names are all plain (see [`plain_name`])
    /// the files are stat'ed side by side: object_store's walk stats each
    /// file two or three times, one after another, and turns every path into
    /// a URL (7.5 s for a million submissions). Anything else (a symlink, a
    /// name object_store would encode or hide) takes object_store's listing,
    /// so both give the same objects.
    pub async fn list(&self, rel_dir: &str) -> Result<Vec<ObjectMeta>> {
        let p = self.path(rel_dir);
        if let Some(dir) = self.local_path(rel_dir) {
            let base = p.clone();
            let fast = tokio::task::spawn_blocking(move || local_list(&dir, &base))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match fast {
                Ok(Some(listed)) => return Ok(listed),
                Ok(None) => {}
                Err(source) => {
                    return Err(Error::Io {
                        path: format!("{}{}", self.url, rel_dir),
                        source,
                    })
                }
            }
        }
        self.inner
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|e| self.err("listing", rel_dir, e))
    }

    /// Deletes an object; missing is fine.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        match self.inner.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("deleting", rel, e)),
        }
    }

    /// Makes sure a local root directory exists (no-op elsewhere).
    pub fn ensure_local_root(&self) -> Result<()> {
        if self.url.scheme() == "file" {
            if let Ok(dir) = self.url.to_file_path() {
                std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

/// A file or folder name that object_store keeps as it is: ASCII letters,
/// digits and `=._-`, not `.` or `..`, no `#` (object_store hides
/// `name#123`, its unfinished uploads).
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'.' | b'_' | b'-'))
}

/// The objects under a local folder, as object_store's `list` gives them
/// (location, size, last modified, e-tag), with the stat calls spread over
/// the cores. `None` when the folder holds something only object_store's
/// walk handles the same way (a symlink, a name that is not plain); an empty
/// list when the folder does not exist.
fn local_list(dir: &std::path::Path, base: &Path) -> std::io::Result<Option<Vec<ObjectMeta>>> {
    // Entries, not paths: each is stat'ed by name within its open folder,
    // without walking the path again (a million files at 1M peers). An
    // entry holds its folder open, so files are stat'ed every
    // `OPEN_FOLDERS` folders rather than all at the end.
    const OPEN_FOLDERS: usize = 64;
    let mut files: Vec<(std::fs::DirEntry, Path)> = Vec::new();
    let mut out: Vec<ObjectMeta> = Vec::new();
    let mut open = 0;
    let mut folders = vec![(dir.to_path_buf(), base.clone())];
    while let Some((d, at)) = folders.pop() {
        if open == OPEN_FOLDERS {
            out.extend(stat_on_cores(std::mem::take(&mut files))?);
            open = 0;
        }
        open += 1;
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| plain_name(n)) else {
                return Ok(None);
            };
            let kind = match entry.file_type() {
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if kind.is_symlink() {
                return Ok(None);
            }
            let location = at.clone().join(name);
            if kind.is_dir() {
                folders.push((entry.path(), location));
            } else {
                files.push((entry, location));
            }
        }
    }
    out.extend(stat_on_cores(files)?);
    Ok(Some(out))
}

/// [`stat_all`] on every core.
fn stat_on_cores(files: Vec<(std::fs::DirEntry, Path)>) -> std::io::Result<Vec<ObjectMeta>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = files.len().div_ceil(threads).max(1);
    let mut out: Vec<ObjectMeta> = Vec::with_capacity(files.len());
    std::thread::scope(|s| {
        let parts: Vec<_> = files
            .chunks(per)
            .map(|part| s.spawn(move || stat_all(part)))
            .collect();
        for p in parts {
            out.extend(p.join().expect("a stat thread does not panic")?);
        }
        Ok::<_, std::io::Error>(())
    })?;
    Ok(out)
}

/// Stats files; one that vanished since the folder was read is left out.
fn stat_all(files: &[(std::fs::DirEntry, Path)]) -> std::io::Result<Vec<ObjectMeta>> {
    let mut out = Vec::with_capacity(files.len());
    for (file, location) in files {
        let m = match file.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let modified = m.modified()?;
        let micros = modified
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0u64;
        out.push(ObjectMeta {
            location: location.clone(),
            last_modified: modified.into(),
            size: m.len(),
            // object_store's local e-tag, so either listing compares equal.
            e_tag: Some(format!("{inode:x}-{micros:x}-{:x}", m.len())),
            version: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn both_listings(s: &Store, rel: &str) -> (Vec<ObjectMeta>, Vec<ObjectMeta>) {
        let mut ours = s.list(rel).await.unwrap();
        let mut theirs: Vec<ObjectMeta> = s
            .object_store()
            .list(Some(&s.path(rel)))
            .try_collect()
            .await
            .unwrap();
        ours.sort_by(|a, b| a.location.cmp(&b.location));
        theirs.sort_by(|a, b| a.location.cmp(&b.location));
        (ours, theirs)
    }

    /// More folders than the listing keeps open at once: files are
    /// stat'ed in rounds, and the listing still equals object_store's.
    #[tokio::test]
    async fn a_listing_over_many_folders_matches_object_store() {
        let root = tempfile::tempdir().unwrap();
        let s = Store::open(root.path().to_str().unwrap()).unwrap();
        for e in 0..150 {
            for f in ["weights/uid=1.parquet", "join/uid=2.parquet"] {
                let rel = format!("submissions/epoch={e}/{f}");
                s.put(&rel, Bytes::from(rel.clone().into_bytes()))
                    .await
                    .unwrap();
            }
        }
        let (ours, theirs) = both_listings(&s, "submissions").await;
        assert_eq!(ours.len(), 300);
        assert_eq!(ours, theirs);
    }

    #[tokio::test]
    async fn local_listing_matches_object_store() {
        let root = tempfile::tempdir().unwrap();
        let s = Store::open(root.path().to_str().unwrap()).unwrap();
        for rel in [
            "submissions/epoch=3/weights/uid=1.parquet",
            "submissions/epoch=3/weights/uid=22.parquet",
            "submissions/epoch=3/weights/deeper/x_y-z.tmp",
            "submissions/epoch=3/join/uid=4.parquet",
        ] {
            s.put(rel, Bytes::from(rel.as_bytes().to_vec()))
                .await
                .unwrap();
        }
        let (ours, theirs) = both_listings(&s, "submissions/epoch=3").await;
        assert_eq!(ours.len(), 4);
        assert_eq!(ours, theirs);
        assert_eq!(
            s.relative(&ours[0].location),
            "submissions/epoch=3/join/uid=4.parquet"
        );
        // A folder that is not there lists as empty, as object_store's does.
        assert!(s.list("submissions/epoch=9").await.unwrap().is_empty());

        // Names object_store hides or encodes, and symlinks, go its way.
        let w = root.path().join("submissions/epoch=3/weights");
        std::fs::write(w.join("uid=5.parquet#12"), b"unfinished").unwrap();
        std::fs::write(w.join("a b%c.parquet"), b"odd").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(w.join("uid=1.parquet"), w.join("uid=7.parquet")).unwrap();
        let (ours, theirs) = both_listings(&s, "submissions/epoch=3/weights").await;
        assert_eq!(ours, theirs);
        assert!(ours
            .iter()
            .all(|m| !s.relative(&m.location).ends_with("#12")));
    }

    #[tokio::test]
    async fn memory_round_trip_and_conditional_put() {
        let s = Store::open("memory://unit-test/net").unwrap();
        assert!(s.get_opt("a/b").await.unwrap().is_none());
        assert!(s
            .put_if_absent("a/b", Bytes::from_static(b"1"))
            .await
            .unwrap());
        assert!(!s
            .put_if_absent("a/b", Bytes::from_static(b"2"))
            .await
            .unwrap());
        assert_eq!(s.get("a/b").await.unwrap(), Bytes::from_static(b"1"));
        let l = s.list("a").await.unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(s.relative(&l[0].location), "a/b");
        let again = Store::open("memory://unit-test/net").unwrap();
        assert!(again.get_opt("a/b").await.unwrap().is_some());
    }

    #[test]
    fn bad_urls_say_why() {
        let e = Store::open("ftp://x/y").unwrap_err().to_string();
        assert!(e.contains("unsupported scheme"), "{e}");
        assert!(Store::open("").is_err());
        assert!(Store::open("s3:///nobucket").is_err());
    }

    #[test]
    fn s3_without_credentials_says_what_to_set() {
        // Options override the environment; blank ones count as unset.
        let blank = [("aws_access_key_id", " "), ("aws_secret_access_key", "")];
        let e = Store::open_with("s3://bucket/x", &blank).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::NoCredentials { .. }), "{msg}");
        assert!(msg.contains("no S3 credentials found"), "{msg}");
        assert!(msg.contains("AWS_ACCESS_KEY_ID"), "{msg}");
        let keys = [("aws_access_key_id", "k"), ("aws_secret_access_key", "s")];
        assert!(Store::open_with("s3://bucket/x", &keys).is_ok());
    }

    #[test]
    fn plain_paths_become_file_urls() {
        let s = Store::open("/tmp/fb-some-net").unwrap();
        assert_eq!(s.url().as_str(), "file:///tmp/fb-some-net/");
        assert_eq!(
            s.path("ledger/state").as_ref(),
            "tmp/fb-some-net/ledger/state"
        );
    }
}
