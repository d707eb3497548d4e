//! The one place where errors become HTTP responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Who is at fault and what the client should do; decides the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong and will never succeed (400).
    BadData,
    /// The body is larger than allowed (413).
    TooLarge,
    /// The content type or encoding is not supported (415).
    UnsupportedMedia,
    /// A limit was hit; retrying later may work (429).
    Limit,
    /// Not ready or shutting down (503).
    Unavailable,
    /// A fault on our side; the sender should retry (500).
    Internal,
    /// A query failed while running (422, `execution`).
    Execution,
    /// A query ran out of time (503, `timeout`).
    Timeout,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadData => StatusCode::BAD_REQUEST,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Limit => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Prometheus' `errorType` for the query API envelope.
    pub fn prometheus_error_type(self) -> &'static str {
        match self {
            ErrorKind::BadData | ErrorKind::TooLarge | ErrorKind::UnsupportedMedia => "bad_data",
            ErrorKind::Limit | ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error answered as plain text (write endpoints: senders log the body).
#[derive(Debug)]
pub struct PlainError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PlainError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for PlainError {
    fn into_response(self) -> Response {
        (self.kind.status(), format!("{}\n", self.message)).into_response()
    }
}

/// An error in Prometheus' JSON envelope (query API endpoints).
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::BadData,
            message: message.into(),
        }
    }
}

impl From<PlainError> for ApiError {
    fn from(e: PlainError) -> Self {
        Self {
            kind: e.kind,
            message: e.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.kind.prometheus_error_type(), "error": self.message});
        (self.kind.status(), axum::Json(body)).into_response()
    }
}

/// Query errors with Prometheus' errorType and status code.
pub fn query_error(e: vigil_promql::QueryError) -> ApiError {
    let kind = match e.error_type() {
        "bad_data" => ErrorKind::BadData,
        "timeout" => ErrorKind::Timeout,
        _ => ErrorKind::Execution,
    };
    ApiError {
        kind,
        message: e.to_string(),
    }
}

/// Classifies storage errors: every one of them is ours, and temporary.
pub fn db_error(e: vigil_db::DbError) -> PlainError {
    match e {
        vigil_db::DbError::ShuttingDown => PlainError::new(
            ErrorKind::Unavailable,
            "shutting down; retry against another instance or later",
        ),
        vigil_db::DbError::Wal(vigil_wal_error) => {
            tracing::error!(error = %vigil_wal_error, "write failed in the wal");
            PlainError::new(
                ErrorKind::Unavailable,
                format!("write-ahead log unavailable: {vigil_wal_error}"),
            )
        }
        other => {
            tracing::error!(error = %other, "storage error");
            PlainError::new(ErrorKind::Internal, format!("storage error: {other}"))
        }
    }
}
