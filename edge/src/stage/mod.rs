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
pub mod session;
pub mod sign;
pub mod validate;

use shared::{ErrorCode, Problem};

use crate::ports::{MaybeSend, MaybeSync};

/// The pipeline's steps in the order a request meets them: the one list that the pipeline marks
/// as it goes and that `h200 bench edge` reports, so a measurement cannot miss or invent a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// A request id assigned (or the client's kept).
    RequestId,
    /// CORS preflight recognised (and answered).
    Cors,
    /// Blocked addresses, attack patterns, tool user agents.
    Intrusion,
    /// Method and path resolved in the route table.
    Route,
    /// Credentials verified (token or API key) and the deny-list checked.
    Authenticate,
    /// The route's permission checked against the principal.
    Authorize,
    /// Every rate class of the route counted.
    RateLimit,
    /// Declared type and length, the body read within its limit and validated.
    Validate,
    /// The RFC 9421 signature over the outbound request.
    Sign,
    /// The backend's answer awaited.
    Forward,
    /// Security headers, CORS fields, the request id and rate-limit fields set.
    Respond,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 11] = [
        Stage::RequestId,
        Stage::Cors,
        Stage::Intrusion,
        Stage::Route,
        Stage::Authenticate,
        Stage::Authorize,
        Stage::RateLimit,
        Stage::Validate,
        Stage::Sign,
        Stage::Forward,
        Stage::Respond,
    ];

    /// The stage's name in figures and logs.
    pub fn name(self) -> &'static str {
        match self {
            Stage::RequestId => "request_id",
            Stage::Cors => "cors",
            Stage::Intrusion => "intrusion",
            Stage::Route => "route",
            Stage::Authenticate => "authenticate",
            Stage::Authorize => "authorize",
            Stage::RateLimit => "rate_limit",
            Stage::Validate => "validate",
            Stage::Sign => "sign",
            Stage::Forward => "forward",
            Stage::Respond => "respond",
        }
    }
}

/// Told each time the pipeline finishes a stage of a request, in [`Stage::ALL`] order (a refused
/// request stops early, then [`Stage::Respond`]). A benchmark times the gaps; runtimes set none.
pub trait StageObserver: MaybeSend + MaybeSync {
    /// A request starts.
    fn started(&self);
    /// `stage` of the current request is done.
    fn finished(&self, stage: Stage);
}

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
