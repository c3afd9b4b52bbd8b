//! Blobs: items, components and artifacts, stored once by their sha256 in a folder (the
//! home's by default, or one every worker mounts) or in an S3-compatible bucket:
//!
//! ```text
//! --blobs /mnt/prelabel-blobs
//! --blobs 's3://BUCKET/PREFIX?endpoint=http://minio.lan:9000&region=us-east-1'
//! ```
//!
//! A bucket's keys come from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`; requests are
//! signed by rusty-s3 (path-style URLs, as MinIO, Ceph and moto serve them) and sent by the
//! host's reqwest. What a worker reads from a bucket is checked against its digest (the
//! bucket is another party) and kept in the home's cache (`HOME/cache/blobs`), where guests'
//! artifacts are read from.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rusty_s3::{Bucket as S3Bucket, Credentials, S3Action, UrlStyle};

use super::StoreError;
use prelabel_files as files;

/// Where `--blobs` says blobs live.
#[derive(Clone, PartialEq, Eq)]
pub enum BlobsAt {
    Folder(PathBuf),
    /// An `s3://` URL, as given.
    Bucket(String),
}

impl std::fmt::Debug for BlobsAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl BlobsAt {
    /// `--blobs`: an `s3://` URL, else a folder.
    pub fn parse(given: &str) -> Result<Self, StoreError> {
        if given.starts_with("s3://") {
            Bucket::parse(given)?;
            Ok(BlobsAt::Bucket(given.to_string()))
        } else {
            Ok(BlobsAt::Folder(PathBuf::from(given)))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            BlobsAt::Folder(dir) => dir.display().to_string(),
            BlobsAt::Bucket(url) => url.clone(),
        }
    }
}

/// The blobs of an open store.
pub enum Blobs {
    Folder(PathBuf),
    Bucket(Box<Bucket>),
}

/// An S3-compatible bucket, and the home's cache of what was read from it.
pub struct Bucket {
    bucket: S3Bucket,
    credentials: Credentials,
    /// Key prefix, without a trailing slash (may be empty).
    prefix: String,
    cache: PathBuf,
    client: OnceLock<reqwest::blocking::Client>,
    shown: String,
}

/// How long a signed request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(600);

fn bad(given: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Location {
        given: given.to_string(),
        reason: reason.into(),
    }
}

impl Bucket {
    /// `s3://BUCKET[/PREFIX]?endpoint=URL[&region=R]`, keys from the environment.
    fn parse(given: &str) -> Result<(S3Bucket, String), StoreError> {
        let url = url::Url::parse(given).map_err(|e| bad(given, e.to_string()))?;
        let name = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad(given, "no bucket name (s3://BUCKET/PREFIX?endpoint=URL)"))?
            .to_string();
        let mut endpoint = None;
        let mut region = "us-east-1".to_string();
        for (key, value) in url.query_pairs() {
            match &*key {
                "endpoint" => endpoint = Some(value.into_owned()),
                "region" => region = value.into_owned(),
                other => return Err(bad(given, format!("unknown parameter `{other}`"))),
            }
        }
        let endpoint =
            endpoint.ok_or_else(|| bad(given, "no endpoint (?endpoint=https://s3.example.com)"))?;
        let endpoint =
            url::Url::parse(&endpoint).map_err(|e| bad(given, format!("endpoint: {e}")))?;
        let bucket = S3Bucket::new(endpoint, UrlStyle::Path, name, region)
            .map_err(|e| bad(given, format!("{e}")))?;
        let prefix = url.path().trim_matches('/').to_string();
        Ok((bucket, prefix))
    }

    fn open(given: &str, home: &Path) -> Result<Self, StoreError> {
        let (bucket, prefix) = Self::parse(given)?;
        let key = std::env::var("AWS_ACCESS_KEY_ID")
            .map_err(|_| bad(given, "AWS_ACCESS_KEY_ID is not set"))?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
            .map_err(|_| bad(given, "AWS_SECRET_ACCESS_KEY is not set"))?;
        Ok(Self {
            bucket,
            credentials: Credentials::new(key, secret),
            prefix,
            cache: home.join("cache/blobs"),
            client: OnceLock::new(),
            shown: given.to_string(),
        })
    }

    fn key(&self, digest: &str) -> String {
        match self.prefix.as_str() {
            "" => format!("sha256/{digest}"),
            prefix => format!("{prefix}/sha256/{digest}"),
        }
    }

    fn client(&self) -> Result<&reqwest::blocking::Client, StoreError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        // reqwest is built without a default TLS provider: ring, installed once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(300))
            .no_proxy()
            .build()
            .map_err(|e| self.failed("", "connect", &e))?;
        Ok(self.client.get_or_init(|| client))
    }

    fn failed(&self, digest: &str, what: &str, e: &dyn std::fmt::Display) -> StoreError {
        StoreError::Bucket {
            at: self.shown.clone(),
            digest: digest.to_string(),
            reason: format!("{what}: {e}"),
        }
    }

    /// Sends a signed request about `digest`'s object: its answer when it succeeded, `None`
    /// for 404, any other status or failure an error naming the method.
    fn send<'a, A: S3Action<'a>>(
        &self,
        digest: &str,
        action: A,
        body: Option<&[u8]>,
    ) -> Result<Option<reqwest::blocking::Response>, StoreError> {
        let what = A::METHOD.to_str();
        let method = reqwest::Method::from_bytes(what.as_bytes())
            .map_err(|e| self.failed(digest, what, &e))?;
        let mut request = self.client()?.request(method, action.sign(SIGNED_FOR));
        if let Some(body) = body {
            request = request.body(body.to_vec());
        }
        let response = request.send().map_err(|e| self.failed(digest, what, &e))?;
        match response.status() {
            s if s.is_success() => Ok(Some(response)),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s => Err(self.failed(digest, what, &s)),
        }
    }

    /// Whether the bucket holds the blob (a HEAD request).
    fn has(&self, digest: &str) -> Result<bool, StoreError> {
        let key = self.key(digest);
        let head = self.bucket.head_object(Some(&self.credentials), &key);
        Ok(self.send(digest, head, None)?.is_some())
    }

    fn put(&self, digest: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if self.has(digest)? {
            return Ok(());
        }
        let key = self.key(digest);
        let put = self.bucket.put_object(Some(&self.credentials), &key);
        match self.send(digest, put, Some(bytes))? {
            Some(_) => Ok(()),
            None => Err(self.failed(digest, "PUT", &"404 Not Found (no such bucket)")),
        }
    }

    fn cached(&self, digest: &str) -> PathBuf {
        sharded(&self.cache, digest)
    }

    /// The blob in the home's cache, fetched (and checked against its digest) if missing.
    fn local(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let path = self.cached(digest);
        if path.is_file() {
            return Ok(path);
        }
        let key = self.key(digest);
        let get = self.bucket.get_object(Some(&self.credentials), &key);
        let response = self
            .send(digest, get, None)?
            .ok_or_else(|| StoreError::MissingBlob {
                digest: digest.to_string(),
                path: PathBuf::from(format!("{}/{key}", self.shown)),
            })?;
        let bytes = response
            .bytes()
            .map_err(|e| self.failed(digest, "GET", &e))?;
        let found = files::sha256_hex(&bytes);
        if found != digest {
            return Err(self.failed(
                digest,
                "GET",
                &format!("the bucket's bytes have sha256 {found}"),
            ));
        }
        files::write_atomically(&path, &bytes).map_err(|source| StoreError::Io {
            what: "cannot cache blob",
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// `ROOT/sha256/ab/cdef...`: a blob's file under a folder.
fn sharded(root: &Path, digest: &str) -> PathBuf {
    let (head, tail) = digest.split_at(digest.len().min(2));
    root.join("sha256").join(head).join(tail)
}

impl Blobs {
    pub fn open(at: &BlobsAt, home: &Path) -> Result<Self, StoreError> {
        match at {
            BlobsAt::Folder(dir) => {
                let sha = dir.join("sha256");
                std::fs::create_dir_all(&sha).map_err(|source| StoreError::Io {
                    what: "cannot create the blob folder",
                    path: sha,
                    source,
                })?;
                Ok(Blobs::Folder(dir.clone()))
            }
            BlobsAt::Bucket(url) => Ok(Blobs::Bucket(Box::new(Bucket::open(url, home)?))),
        }
    }

    /// Stores bytes under their digest (once: a blob already there is not written again).
    pub fn put(&self, digest: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match self {
            Blobs::Folder(dir) => {
                let path = sharded(dir, digest);
                if path.is_file() {
                    return Ok(());
                }
                files::write_atomically(&path, bytes).map_err(|source| StoreError::Io {
                    what: "cannot write blob",
                    path,
                    source,
                })
            }
            Blobs::Bucket(bucket) => bucket.put(digest, bytes),
        }
    }

    /// A local file with the blob's bytes: in the folder, or the home's cache of the bucket.
    pub fn local(&self, digest: &str) -> Result<PathBuf, StoreError> {
        match self {
            Blobs::Folder(dir) => {
                let path = sharded(dir, digest);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(StoreError::MissingBlob {
                        digest: digest.to_string(),
                        path,
                    })
                }
            }
            Blobs::Bucket(bucket) => bucket.local(digest),
        }
    }

    /// The blob's bytes, checked against their digest: a blob changed on disk (a flipped
    /// bit, a file written over) is an error naming it, never bytes a detector is given.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.local(digest)?;
        let bytes = std::fs::read(&path).map_err(|_| StoreError::MissingBlob {
            digest: digest.to_string(),
            path: path.clone(),
        })?;
        let found = files::sha256_hex(&bytes);
        if found != digest {
            return Err(StoreError::CorruptBlob {
                digest: digest.to_string(),
                path,
                found,
            });
        }
        Ok(bytes)
    }

    /// Whether the blob is stored (for a bucket: in the bucket, whatever the cache holds).
    pub fn has(&self, digest: &str) -> Result<bool, StoreError> {
        match self {
            Blobs::Folder(dir) => Ok(sharded(dir, digest).is_file()),
            Blobs::Bucket(bucket) => bucket.has(digest),
        }
    }
}
