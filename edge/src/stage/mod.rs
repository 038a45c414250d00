//! The pipeline's stages, one module each, in the order a request meets them. Each stage is a
//! small function over plain values and the traits of [`crate::ports`], so it can be tested and
//! measured alone.

pub mod audit;
pub mod authenticate;
pub mod authorize;
pub mod cors;
pub mod intrusion;
pub mod rate_limit;
pub mod request_id;
pub mod respond;
pub mod sign;
pub mod validate;

use shared::{ErrorCode, Problem};

/// A stage's decision to answer the client itself with a problem document, plus header fields
/// that belong to the refusal (`Allow`, `Retry-After`, the rate-limit fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Boxed: a problem is large and refusals travel through `Result`s.
    pub problem: Box<Problem>,
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    /// A refusal with `code` and no detail.
    pub fn new(code: ErrorCode) -> Self {
        Refusal {
            problem: Box::new(Problem::new(code)),
            headers: Vec::new(),
        }
    }

    /// The same refusal with a human-readable detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        *self.problem = self.problem.as_ref().clone().with_detail(detail);
        self
    }

    /// The same refusal with one more header field.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The stable code of this refusal.
    pub fn code(&self) -> ErrorCode {
        self.problem.code
    }
}

impl From<Problem> for Refusal {
    fn from(problem: Problem) -> Self {
        Refusal {
            problem: Box::new(problem),
            headers: Vec::new(),
        }
    }
}

impl From<ErrorCode> for Refusal {
    fn from(code: ErrorCode) -> Self {
        Refusal::new(code)
    }
}
