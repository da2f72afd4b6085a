//! commit-back: commit build artifacts and push them back to Bitbucket,
//! explaining every refusal. `main.rs` is a thin shell over [`run::run`].

pub mod bitbucket;
pub mod checkout;
pub mod classify;
pub mod config;
pub mod credentials;
pub mod enrich;
pub mod git;
pub mod help;
pub mod insights;
pub mod log;
pub mod merge_refusal;
pub mod origin;
pub mod progress;
pub mod pull_request;
pub mod remedies;
pub mod report;
pub mod run;
pub mod secret;
pub mod signing;
pub mod text;
pub mod variables;
