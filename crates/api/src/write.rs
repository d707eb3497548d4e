//! Prometheus remote-write 1.0 (`/api/v1/push`, `/api/v1/write`) and remote-read (SAMPLES).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use vigil_ingest::{DecodeError, DiscardReason};
use vigil_model::{MatchOp, Matcher};
use vigil_proto::prometheus as pb;

use crate::error::{db_error, ErrorKind, PlainError};
use crate::{tenant, AppState};

/// Reads the body up to `limit` bytes; larger bodies get 413 naming the limit.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, PlainError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            PlainError::new(
                ErrorKind::TooLarge,
                format!("request body larger than the limit of {limit} bytes"),
            )
        } else {
            PlainError::new(ErrorKind::BadData, format!("cannot read request body: {e}"))
        }
    })
}

fn check_remote_write_headers(headers: &HeaderMap) -> Result<(), PlainError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or("").to_ascii_lowercase();
        let mut parts = content_type.split(';').map(str::trim);
        if parts.next() != Some("application/x-protobuf") {
            return Err(PlainError::new(
                ErrorKind::UnsupportedMedia,
                format!("unsupported Content-Type {content_type:?}: remote write 1.0 needs application/x-protobuf"),
            ));
        }
        for param in parts {
            if let Some(proto) = param.strip_prefix("proto=") {
                if proto != "prometheus.WriteRequest" {
                    return Err(PlainError::new(
                        ErrorKind::UnsupportedMedia,
                        format!("unsupported remote write message {proto:?}: this receiver speaks prometheus.WriteRequest (remote write 1.0)"),
                    ));
                }
            }
        }
    }
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if encoding != "snappy" {
            return Err(PlainError::new(
                ErrorKind::UnsupportedMedia,
                format!("unsupported Content-Encoding {encoding:?}: remote write bodies are snappy block-compressed"),
            ));
        }
    }
    Ok(())
}

pub(crate) async fn remote_write(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    check_remote_write_headers(&headers)?;
    let tenant = tenant(&headers)?;
    let db = state.db()?.clone();
    let body = read_body(body, state.max_request_bytes).await?;
    let guard = db.begin_write().await.map_err(db_error)?;
    // Decode, validate and check on this worker thread, with the reactor handed to another
    // (block_in_place): label strings stay borrowed from the body until the head has them.
    let prepared = tokio::task::block_in_place(|| {
        let raw = vigil_ingest::decompress(&body, &state.limits).map_err(decode_error)?;
        let batch = vigil_ingest::parse_and_validate(&raw, &state.limits, vigil_db::now_ms())
            .map_err(decode_error)?;
        db.prepare_write(&guard, &tenant, batch).map_err(db_error)
    })?;
    let outcome = db.commit_write(guard, prepared).await.map_err(db_error)?;
    if outcome.discards.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let message = vigil_ingest::describe_discards(&outcome.discards);
    let kind = if outcome.hit_series_limit() {
        ErrorKind::Limit
    } else {
        ErrorKind::BadData
    };
    if outcome
        .discards
        .iter()
        .all(|d| d.reason == DiscardReason::SeriesLimit)
        || kind == ErrorKind::BadData
    {
        tracing::debug!(tenant = %tenant, %message, "write partially rejected");
    }
    Err(PlainError::new(kind, message))
}

fn decode_error(e: DecodeError) -> PlainError {
    match e {
        DecodeError::TooLarge { .. } => PlainError::new(ErrorKind::TooLarge, e.to_string()),
        _ => PlainError::new(ErrorKind::BadData, e.to_string()),
    }
}

fn to_matcher(m: &pb::LabelMatcher) -> Result<Matcher, PlainError> {
    let op = match m.r#type {
        0 => MatchOp::Equal,
        1 => MatchOp::NotEqual,
        2 => MatchOp::RegexMatch,
        3 => MatchOp::RegexNoMatch,
        other => {
            return Err(PlainError::new(
                ErrorKind::BadData,
                format!("unknown matcher type {other}"),
            ))
        }
    };
    Matcher::new(op, &m.name, &m.value)
        .map_err(|e| PlainError::new(ErrorKind::BadData, e.to_string()))
}

/// Remote read with the SAMPLES response type.
pub(crate) async fn remote_read(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    let tenant = tenant(&headers)?;
    let db = state.db()?.clone();
    let body = read_body(body, state.max_request_bytes).await?;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .map_err(|e| {
            PlainError::new(
                ErrorKind::BadData,
                format!("snappy decompression failed: {e}"),
            )
        })?;
    let request = pb::ReadRequest::decode(raw.as_slice()).map_err(|e| {
        PlainError::new(ErrorKind::BadData, format!("protobuf decoding failed: {e}"))
    })?;
    let mut response = pb::ReadResponse::default();
    for query in &request.queries {
        let matchers = query
            .matchers
            .iter()
            .map(to_matcher)
            .collect::<Result<Vec<_>, _>>()?;
        let series = db
            .select_samples(
                &tenant,
                &matchers,
                query.start_timestamp_ms,
                query.end_timestamp_ms,
            )
            .await
            .map_err(db_error)?;
        let timeseries = series
            .into_iter()
            .map(|s| pb::TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|l| pb::Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|x| pb::Sample {
                        value: x.value,
                        timestamp: x.timestamp_ms,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        response.results.push(pb::QueryResult { timeseries });
    }
    let encoded = snap::raw::Encoder::new()
        .compress_vec(&response.encode_to_vec())
        .map_err(|e| {
            PlainError::new(
                ErrorKind::Internal,
                format!("snappy compression failed: {e}"),
            )
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        encoded,
    )
        .into_response())
}
