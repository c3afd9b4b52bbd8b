//! API errors: `{"error": "..."}` with the status that fits the cause. The message is the
//! operation's own (it names the field, the thing that is missing, the limit).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use prelabel::error::Error;
use prelabel::package::archive::ArchiveError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }

    /// Names the request field at fault.
    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send `Authorization: Bearer TOKEN`",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no such endpoint (see /api/openapi.json)",
        )
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Archive(ArchiveError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Archive(ArchiveError::Io { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Archive(_) => StatusCode::BAD_REQUEST,
            Error::Invalid { .. }
            | Error::Filter { .. }
            | Error::Init(_)
            | Error::GroundTruth(_)
            | Error::Package(_)
            | Error::Pipeline(_)
            | Error::NoFunction { .. } => StatusCode::BAD_REQUEST,
            Error::Conflict { .. } | Error::HomeBusy { .. } => StatusCode::CONFLICT,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            // The function could not make boxes of this input; or not in time.
            Error::Failed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Pending { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::Download { .. } => StatusCode::BAD_GATEWAY,
            Error::Store(_)
            | Error::Sql(_)
            | Error::Load { .. }
            | Error::Exec { .. }
            | Error::Runtime(_)
            | Error::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let field = match &error {
            Error::Invalid { field, .. } => Some(field.replace('-', "_")),
            Error::Filter { .. } => Some("filters".to_string()),
            _ => None,
        };
        if error.is_disk_full() {
            tracing::error!("API: the disk is full: {error}");
            return Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!("the disk is full; nothing of the request was stored ({error})"),
            );
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("API: {error}");
        }
        Self {
            status,
            message: error.to_string(),
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            field: self.field,
        };
        (self.status, Json(body)).into_response()
    }
}
