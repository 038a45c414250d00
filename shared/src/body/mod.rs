//! Strict request bodies: JSON that refuses unknown fields, NaN and infinities, and the lengths and
//! ranges of the public API; every refusal is a [`Problem`](crate::Problem) with a stable code
//! naming the field.
//!
//! One submodule per family of routes: [`points`] (NCS), [`analysis`] (the upload and its
//! feedback), [`rules`], [`auth`], [`form`] (a strict `application/x-www-form-urlencoded`
//! decoder) and [`multipart`] (a strict `multipart/form-data` reader). Beside them, `json` parses
//! ([`parse_json`], [`parse_valid`]) and `check` holds the [`Validate`] trait and the field checks
//! every body uses.
//!
//! Bodies refuse rather than report everything: the first broken rule found is the answer.

// A refusal is the `Problem` that goes on the wire; it is built on the cold path only, so it is
// returned by value rather than boxed.
#![allow(clippy::result_large_err)]

pub mod account;
pub mod analysis;
pub mod auth;
mod check;
pub mod form;
mod json;
pub mod multipart;
pub mod points;
pub mod rules;
pub mod stream;

pub use account::{AccountPatch, UserCreateRequest, UserPatch};
pub use analysis::{AnalysisFeedbackRequest, AnalysisOptions, AnalysisUpload};
pub use auth::{
    ApiKeyCreateRequest, LoginRequest, LogoutRequest, MfaVerifyRequest, PasswordChangeRequest,
    RefreshRequest,
};
pub use check::{MAX_DETAIL_CHARS, MAX_FIELD_NAME_CHARS, Validate};
pub use form::decode_form;
pub use json::{parse_json, parse_valid};
pub use points::{AlgorithmOverrides, ProcessPointsRequest};
pub use rules::{
    ActionKind, ConditionOperator, NaturalLanguageRuleRequest, RuleAction, RuleCondition,
    RuleDefinition, RuleEvaluateRequest, RulePatch, StoredRule,
};
pub use stream::{SocketMessage, SocketMessageError, StreamTicketRequest};
