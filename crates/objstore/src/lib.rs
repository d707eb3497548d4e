//! Where blocks live for good: a local directory in the embedded mode, or an S3-compatible
//! bucket (MinIO, AWS) through `object_store`. This crate owns the path layout
//! (`<tenant>/<kind>/blocks/<ulid>/<file>`) and uploads that retry with backoff until the store
//! confirms them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ObjStoreError {
    #[error("object store url {url:?} is not supported: use a local path, file:///path or s3://bucket/prefix")]
    UnsupportedUrl { url: String },
    #[error("cannot create local object store at {path}: {source}")]
    LocalDir {
        path: String,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

/// S3 connection settings; each unset field falls back to the standard `AWS_*` variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://minio:9000` (default: AWS_ENDPOINT_URL or AWS itself).
    pub endpoint: Option<String>,
    /// Region (default: AWS_REGION, else us-east-1).
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as MinIO usually needs.
    pub path_style: bool,
    /// Allow plain http endpoints.
    pub allow_http: bool,
}

/// Opens the store named by `url`: a local path or `file:///path`, or `s3://bucket[/prefix]`.
/// `request_timeout` bounds each request so an unreachable store fails fast and is retried by
/// the uploader rather than hanging.
pub fn open(
    url: &str,
    s3: &S3Config,
    request_timeout: Duration,
) -> Result<Arc<dyn ObjectStore>, ObjStoreError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ObjStoreError::UnsupportedUrl {
                url: url.to_string(),
            });
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(!s3.path_style)
            .with_allow_http(s3.allow_http)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(request_timeout)
                    .with_connect_timeout(request_timeout.min(Duration::from_secs(5)))
                    .with_allow_http(s3.allow_http),
            )
            // The uploader retries forever with its own backoff; keep the client's short.
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: request_timeout,
                ..Default::default()
            });
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        } else if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        if let Some(key) = &s3.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &s3.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        });
    }
    let local = url.strip_prefix("file://").unwrap_or(url);
    if local.contains("://") {
        return Err(ObjStoreError::UnsupportedUrl {
            url: url.to_string(),
        });
    }
    open_local(std::path::Path::new(local))
}

/// A store over a local directory, created if missing.
pub fn open_local(dir: &std::path::Path) -> Result<Arc<dyn ObjectStore>, ObjStoreError> {
    std::fs::create_dir_all(dir).map_err(|source| ObjStoreError::LocalDir {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(Arc::new(LocalFileSystem::new_with_prefix(dir)?))
}

/// `<tenant>/<kind>/blocks/<ulid>/`
pub fn block_dir(tenant: &str, kind: &str, ulid: &str) -> Path {
    Path::from(format!("{tenant}/{kind}/blocks/{ulid}"))
}

pub fn block_file(tenant: &str, kind: &str, ulid: &str, file: &str) -> Path {
    Path::from(format!("{tenant}/{kind}/blocks/{ulid}/{file}"))
}

/// A complete block found in the store (its meta.json exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    pub tenant: String,
    pub kind: String,
    pub ulid: String,
}

/// Lists the complete blocks of every tenant.
pub async fn list_blocks(
    store: &dyn ObjectStore,
    meta_file: &str,
) -> Result<Vec<StoredBlock>, ObjStoreError> {
    let objects: Vec<_> = store.list(None).try_collect().await?;
    let mut blocks = Vec::new();
    for object in objects {
        let parts: Vec<&str> = object.location.as_ref().split('/').collect();
        if let [tenant, kind, "blocks", ulid, file] = parts.as_slice() {
            if *file == meta_file {
                blocks.push(StoredBlock {
                    tenant: tenant.to_string(),
                    kind: kind.to_string(),
                    ulid: ulid.to_string(),
                });
            }
        }
    }
    blocks.sort_by(|a, b| a.ulid.cmp(&b.ulid));
    Ok(blocks)
}

pub async fn get(store: &dyn ObjectStore, path: &Path) -> Result<Bytes, ObjStoreError> {
    Ok(store.get(path).await?.bytes().await?)
}

/// Backoff between upload attempts: doubles from `initial` up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// Puts `bytes` at `path`, retrying with backoff until the store confirms or `give_up` says to
/// stop (shutdown). `on_failure` sees every failed attempt. Returns whether the put succeeded.
pub async fn put_with_retry(
    store: &dyn ObjectStore,
    path: &Path,
    bytes: Bytes,
    backoff: Backoff,
    mut on_failure: impl FnMut(&object_store::Error),
    give_up: &tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut delay = backoff.initial;
    loop {
        match store.put(path, PutPayload::from_bytes(bytes.clone())).await {
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(path = %path, error = %e, retry_in = ?delay, "block upload failed");
                on_failure(&e);
            }
        }
        if *give_up.borrow() {
            return false;
        }
        let mut give_up = give_up.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = give_up.wait_for(|stop| *stop) => return false,
        }
        delay = (delay * 2).min(backoff.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        let dir = std::env::temp_dir().join(format!("vigil-objstore-test-{}", std::process::id()));
        assert!(open(
            dir.to_str().unwrap_or_default(),
            &S3Config::default(),
            Duration::from_secs(1)
        )
        .is_ok());
        assert!(matches!(
            open("gs://bucket", &S3Config::default(), Duration::from_secs(1)),
            Err(ObjStoreError::UnsupportedUrl { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
