//! Errors of the HTTP layer: every refusal is one [`ErrorCode`], answered as problem+json with the
//! request id, never a stack trace or a secret.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use shared::ErrorCode;
use shared::problem::{FieldError, PROBLEM_CONTENT_TYPE, Problem};

use crate::store::StoreError;

/// A refusal on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    /// Boxed: a problem is large and errors travel through every `Result` of the handlers.
    pub problem: Box<Problem>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> ApiError {
        ApiError::from(Problem::new(code))
    }

    pub fn detail(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError::from(Problem::new(code).with_detail(detail))
    }

    pub fn field(code: ErrorCode, field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::from(
            Problem::new(code)
                .with_detail(message.clone())
                .with_field_error(FieldError {
                    field: field.into(),
                    code,
                    message,
                }),
        )
    }

    pub fn code(&self) -> ErrorCode {
        self.problem.code
    }

    /// A failure of the backend's own while doing `what`: the cause goes to the log, here and
    /// only here; the client gets `INTERNAL` (500) without it.
    pub fn internal(what: &str, cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "{what} failed");
        ApiError::new(ErrorCode::Internal)
    }
}

/// For `map_err`: [`ApiError::internal`] while doing `what`.
pub fn internal<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ApiError {
    move |cause| ApiError::internal(what, &cause)
}

/// `axum::extract::Query` whose refusal is problem+json like every other: a query string the
/// route does not take (an unknown parameter, a value of the wrong type) is `VALIDATION_FAILED`
/// with the parser's reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::detail(
                ErrorCode::ValidationFailed,
                rejection
                    .body_text()
                    .chars()
                    .take(shared::body::MAX_DETAIL_CHARS)
                    .collect::<String>(),
            )),
        }
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        ApiError {
            problem: Box::new(problem),
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::new(ErrorCode::NotFound),
            StoreError::Conflict => ApiError::new(ErrorCode::Conflict),
            // A request that passed the gate just before its account was erased: its credential
            // is refused as the gate refuses it now (the erasure revoked every token of it).
            StoreError::AccountGone => {
                ApiError::detail(ErrorCode::RevokedToken, "the account no longer exists")
            }
            other => {
                // The cause goes to the log, never to the client.
                tracing::error!(error = %other, "store failure");
                ApiError::new(ErrorCode::ServiceUnavailable)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(*self.problem)
    }
}

/// A problem+json response; the request-id middleware fills in `request_id` on the way out.
pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, problem.to_json()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    response.extensions_mut().insert(ProblemMarker(problem));
    response
}

/// Marks a response as a problem so middleware can add the request id and audit it.
#[derive(Debug, Clone)]
pub struct ProblemMarker(pub Problem);

pub type ApiResult<T> = Result<T, ApiError>;
