//! commit-back: commit build artifacts and push them back to Bitbucket,
//! explaining every refusal. `main.rs` is a thin shell over [`run::run`].

pub mod classify;
pub mod config;
pub mod credentials;
pub mod git;
pub mod log;
pub mod report;
pub mod run;
pub mod secret;
pub mod variables;
