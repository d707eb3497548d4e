//! The one configuration struct. Sources, later ones winning: built-in defaults, the TOML file
//! given by `--config`, `VIGIL_*` environment variables, command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use vigil_objstore::S3Config;

/// Every setting of `vigil serve`, with its default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on. Default `0.0.0.0:9009`.
    pub listen: SocketAddr,
    /// Directory for the WAL and blocks waiting for upload. Default `./data`.
    pub data_dir: PathBuf,
    /// Where blocks are kept: a local path or `file:///path`, or `s3://bucket/prefix`.
    /// Default: `<data_dir>/objects`.
    pub object_store: Option<String>,
    /// S3 settings (also read from the standard `AWS_*` variables).
    pub s3: S3Config,
    /// Time range of one block; the head is cut at multiples of it. Default 2h.
    #[serde(with = "humantime_serde")]
    pub block_duration: Duration,
    /// fsync the WAL before acknowledging a write. Default true.
    pub wal_fsync: bool,
    /// Size at which a WAL segment is closed and a new one begun. Default 128 MiB.
    pub wal_segment_bytes: u64,
    /// Samples up to this much older than their series' newest sample are accepted. Default 1h.
    #[serde(with = "humantime_serde")]
    pub out_of_order_window: Duration,
    /// Samples further than this ahead of the server's clock are rejected. Default 10m.
    #[serde(with = "humantime_serde")]
    pub max_future: Duration,
    /// Largest compressed request body; larger ones get 413. Default 32 MiB.
    pub max_request_bytes: usize,
    /// Largest decompressed remote-write body; larger ones get 413. Default 256 MiB.
    pub max_decompressed_bytes: usize,
    /// Series per tenant in the head; beyond it new series get 429. Default 0 (unlimited).
    pub max_series_per_tenant: usize,
    /// Labels per series, `__name__` included; beyond it 400. Default 30.
    pub max_label_names_per_series: usize,
    /// Longest log line in bytes (Loki's `max_line_size`); 0 = unlimited. Default 262144.
    pub max_line_size: usize,
    /// Truncate longer log lines instead of rejecting them. Default false.
    pub max_line_size_truncate: bool,
    /// Reject log entries older than this (Loki's `reject_old_samples_max_age`). Default: unset,
    /// any age is accepted (backfills).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub reject_older_than: Option<Duration>,
    /// Timeout of one object-store request. Default 30s.
    #[serde(with = "humantime_serde")]
    pub object_store_timeout: Duration,
    /// Longest wait for block uploads at shutdown; the rest upload at the next start. Default 60s.
    #[serde(with = "humantime_serde")]
    pub shutdown_upload_timeout: Duration,
    /// How far back an instant selector looks for a sample. Default 5m (Prometheus').
    #[serde(with = "humantime_serde")]
    pub query_lookback_delta: Duration,
    /// Longest a query may run; a request's `timeout` can only lower it. Default 2m.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Most samples one query may hold in memory. Default 50000000 (Prometheus').
    pub query_max_samples: usize,
    /// Memory for recently read metrics block files (`samples.parquet`), so repeated PromQL
    /// queries over the same hours do not fetch them again (and up to a quarter as much for
    /// their parsed Parquet metadata); 0 disables. Default 134217728 (128 MiB).
    pub metric_block_cache_bytes: usize,
    /// Memory for recently read log block files (`entries.parquet`), so repeated queries over
    /// the same hours do not fetch them again (and up to a quarter as much each for their line
    /// indexes and parsed Parquet metadata); 0 disables. Default 134217728 (128 MiB).
    pub log_block_cache_bytes: usize,
    /// Memory for row groups of log blocks decoded whole when queries read their lines, so a
    /// refreshing dashboard does not decompress the same hours again; 0 disables. Default
    /// 268435456 (256 MiB).
    pub log_row_group_cache_bytes: usize,
    /// A due log block range that is still receiving entries (a backfill) is cut once none
    /// arrived for this long, or after 30 times this at most; 0s cuts as soon as it is due.
    /// Default 10s.
    #[serde(with = "humantime_serde")]
    pub log_cut_idle: Duration,
    /// Above this much log head memory (compressed entries), due ranges are cut without
    /// waiting for `log_cut_idle`; 0 = no limit. Default 100663296 (96 MiB).
    pub log_head_max_bytes: usize,
    /// Log filter (`error`, `warn`, `info`, `debug`, or a tracing filter). Default `info`.
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9009)),
            data_dir: PathBuf::from("./data"),
            object_store: None,
            s3: S3Config::default(),
            block_duration: Duration::from_secs(2 * 3600),
            wal_fsync: true,
            wal_segment_bytes: 128 << 20,
            out_of_order_window: Duration::from_secs(3600),
            max_future: Duration::from_secs(600),
            max_request_bytes: 32 << 20,
            max_decompressed_bytes: 256 << 20,
            max_series_per_tenant: 0,
            max_label_names_per_series: 30,
            max_line_size: 256 << 10,
            metric_block_cache_bytes: 128 << 20,
            log_block_cache_bytes: 128 << 20,
            log_row_group_cache_bytes: 256 << 20,
            log_cut_idle: Duration::from_secs(10),
            log_head_max_bytes: 96 << 20,
            max_line_size_truncate: false,
            reject_older_than: None,
            object_store_timeout: Duration::from_secs(30),
            shutdown_upload_timeout: Duration::from_secs(60),
            query_lookback_delta: Duration::from_secs(300),
            query_timeout: Duration::from_secs(120),
            query_max_samples: 50_000_000,
            log_level: "info".into(),
        }
    }
}

impl Config {
    /// The object store URL with the default applied.
    pub fn object_store_url(&self) -> String {
        match &self.object_store {
            Some(url) if !url.is_empty() => url.clone(),
            _ => self.data_dir.join("objects").display().to_string(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.block_duration < Duration::from_secs(60) {
            return Err("block_duration must be at least 1m".into());
        }
        if self.max_request_bytes == 0 || self.max_decompressed_bytes == 0 {
            return Err("request size limits must be positive".into());
        }
        if self.query_lookback_delta.is_zero() || self.query_timeout.is_zero() {
            return Err("query_lookback_delta and query_timeout must be positive".into());
        }
        if self.wal_segment_bytes < (1 << 20) {
            return Err("wal_segment_bytes must be at least 1 MiB".into());
        }
        Ok(())
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "Vigil: Prometheus remote-write and Loki push into Parquet blocks on object storage, read back with Prometheus' APIs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process.
    Serve(ServeArgs),
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// Flags of `vigil serve`; each also reads `VIGIL_<NAME>` and overrides the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as in README's configuration table).
    #[arg(long, env = "VIGIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address [default: 0.0.0.0:9009].
    #[arg(long, env = "VIGIL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory for the WAL and blocks awaiting upload [default: ./data].
    #[arg(long, env = "VIGIL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Object store: local path, file:///path or s3://bucket/prefix [default: <data-dir>/objects].
    #[arg(long, env = "VIGIL_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// S3 endpoint URL, e.g. http://127.0.0.1:9000 [default: AWS_ENDPOINT_URL or AWS].
    #[arg(long, env = "VIGIL_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION or us-east-1].
    #[arg(long, env = "VIGIL_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 access key id [default: AWS_ACCESS_KEY_ID].
    #[arg(long, env = "VIGIL_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key [default: AWS_SECRET_ACCESS_KEY].
    #[arg(long, env = "VIGIL_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Path-style S3 requests (MinIO) [default: false].
    #[arg(long, env = "VIGIL_S3_PATH_STYLE", num_args = 0..=1, default_missing_value = "true")]
    pub s3_path_style: Option<bool>,
    /// Allow http:// S3 endpoints [default: false].
    #[arg(long, env = "VIGIL_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub s3_allow_http: Option<bool>,
    /// Block time range, e.g. 2h or 1m [default: 2h].
    #[arg(long, env = "VIGIL_BLOCK_DURATION", value_parser = parse_duration)]
    pub block_duration: Option<Duration>,
    /// fsync the WAL before acknowledging writes [default: true].
    #[arg(long, env = "VIGIL_WAL_FSYNC", num_args = 0..=1, default_missing_value = "true")]
    pub wal_fsync: Option<bool>,
    /// Accept samples this much older than their series' newest [default: 1h].
    #[arg(long, env = "VIGIL_OUT_OF_ORDER_WINDOW", value_parser = parse_duration)]
    pub out_of_order_window: Option<Duration>,
    /// Reject samples further than this in the future [default: 10m].
    #[arg(long, env = "VIGIL_MAX_FUTURE", value_parser = parse_duration)]
    pub max_future: Option<Duration>,
    /// Largest compressed request body in bytes [default: 33554432].
    #[arg(long, env = "VIGIL_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Series per tenant, 0 = unlimited [default: 0].
    #[arg(long, env = "VIGIL_MAX_SERIES_PER_TENANT")]
    pub max_series_per_tenant: Option<usize>,
    /// Longest log line in bytes, 0 = unlimited [default: 262144].
    #[arg(long, env = "VIGIL_MAX_LINE_SIZE")]
    pub max_line_size: Option<usize>,
    /// Truncate log lines longer than max-line-size instead of rejecting them [default: false].
    #[arg(long, env = "VIGIL_MAX_LINE_SIZE_TRUNCATE", num_args = 0..=1, default_missing_value = "true")]
    pub max_line_size_truncate: Option<bool>,
    /// Reject log entries older than this, e.g. 168h [default: unset, any age accepted].
    #[arg(long, env = "VIGIL_REJECT_OLDER_THAN", value_parser = parse_duration)]
    pub reject_older_than: Option<Duration>,
    /// Lookback of instant selectors [default: 5m].
    #[arg(long, env = "VIGIL_QUERY_LOOKBACK_DELTA", value_parser = parse_duration)]
    pub query_lookback_delta: Option<Duration>,
    /// Longest a query may run [default: 2m].
    #[arg(long, env = "VIGIL_QUERY_TIMEOUT", value_parser = parse_duration)]
    pub query_timeout: Option<Duration>,
    /// Most samples one query may hold in memory [default: 50000000].
    #[arg(long, env = "VIGIL_QUERY_MAX_SAMPLES")]
    pub query_max_samples: Option<usize>,
    /// Memory for recently read metrics block files, 0 = off [default: 134217728].
    #[arg(long, env = "VIGIL_METRIC_BLOCK_CACHE_BYTES")]
    pub metric_block_cache_bytes: Option<usize>,
    /// Memory for recently read log block files, 0 = off [default: 134217728].
    #[arg(long, env = "VIGIL_LOG_BLOCK_CACHE_BYTES")]
    pub log_block_cache_bytes: Option<usize>,
    /// Memory for log block row groups decoded by queries, 0 = off [default: 268435456].
    #[arg(long, env = "VIGIL_LOG_ROW_GROUP_CACHE_BYTES")]
    pub log_row_group_cache_bytes: Option<usize>,
    /// Wait this long after the last entry for a due log range before cutting it, 0s = cut
    /// when due [default: 10s].
    #[arg(long, env = "VIGIL_LOG_CUT_IDLE", value_parser = parse_duration)]
    pub log_cut_idle: Option<Duration>,
    /// Log head memory above which due ranges are cut without waiting, 0 = no limit
    /// [default: 100663296].
    #[arg(long, env = "VIGIL_LOG_HEAD_MAX_BYTES")]
    pub log_head_max_bytes: Option<usize>,
    /// Log filter [default: info].
    #[arg(long, env = "VIGIL_LOG_LEVEL")]
    pub log_level: Option<String>,
}

impl ServeArgs {
    /// Loads the file (if any) and applies environment and flags over it.
    pub fn resolve(self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
                toml::from_str::<Config>(&text)
                    .map_err(|e| format!("config {}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = self.$field {
                    config.$field = v;
                }
            };
        }
        set!(listen);
        set!(data_dir);
        set!(block_duration);
        set!(wal_fsync);
        set!(out_of_order_window);
        set!(max_future);
        set!(max_request_bytes);
        set!(max_series_per_tenant);
        set!(max_line_size);
        set!(max_line_size_truncate);
        if self.reject_older_than.is_some() {
            config.reject_older_than = self.reject_older_than;
        }
        set!(query_lookback_delta);
        set!(query_timeout);
        set!(query_max_samples);
        set!(metric_block_cache_bytes);
        set!(log_block_cache_bytes);
        set!(log_row_group_cache_bytes);
        set!(log_cut_idle);
        set!(log_head_max_bytes);
        set!(log_level);
        if self.object_store.is_some() {
            config.object_store = self.object_store;
        }
        if self.s3_endpoint.is_some() {
            config.s3.endpoint = self.s3_endpoint;
        }
        if self.s3_region.is_some() {
            config.s3.region = self.s3_region;
        }
        if self.s3_access_key_id.is_some() {
            config.s3.access_key_id = self.s3_access_key_id;
        }
        if self.s3_secret_access_key.is_some() {
            config.s3.secret_access_key = self.s3_secret_access_key;
        }
        if let Some(v) = self.s3_path_style {
            config.s3.path_style = v;
        }
        if let Some(v) = self.s3_allow_http {
            config.s3.allow_http = v;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_are_documented_values() {
        let dir = std::env::temp_dir().join(format!("vigil-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vigil.toml");
        std::fs::write(
            &file,
            "block_duration = \"5m\"\nmax_series_per_tenant = 7\n[s3]\npath_style = true\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "vigil",
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--max-series-per-tenant",
            "9",
        ]);
        let Command::Serve(args) = cli.command;
        let config = args.resolve().unwrap();
        assert_eq!(config.block_duration, Duration::from_secs(300));
        assert_eq!(config.max_series_per_tenant, 9);
        assert!(config.s3.path_style);
        assert!(config.wal_fsync);
        assert_eq!(config.listen.port(), 9009);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn example_config_file_parses_to_the_defaults() {
        let example: Config = toml::from_str(include_str!("../../../deploy/vigil.toml")).unwrap();
        let defaults = Config::default();
        assert_eq!(
            toml::to_string(&example).unwrap(),
            toml::to_string(&defaults).unwrap()
        );
    }
}
