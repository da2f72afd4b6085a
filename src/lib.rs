//! commit-back: commit build artifacts and push them back to Bitbucket,
//! explaining every refusal. `main.rs` is a thin shell over [`run::run`].

pub mod bitbucket;
pub mod checkout;
pub mod config;
pub mod enrich;
pub mod explain;
pub mod git;
pub mod help;
pub mod insights;
pub mod log;
pub mod memory;
pub mod origin;
pub mod path_list;
pub mod progress;
pub mod pull_request;
pub mod report;
pub mod run;
pub mod secret;
pub mod signing;
pub mod terms;
pub mod text;
pub mod variables;
