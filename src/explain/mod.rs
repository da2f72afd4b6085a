//! Why a run was refused, and what to do: the evidence a failed operation
//! left ([`evidence`]), the pure classifiers that name its kind and explain
//! it ([`classify`] for pushes and the transports, [`merge_refusal`] for the
//! API's refusal to merge), and the remedies for each kind in the user's
//! situation (`remedies`).
//!
//! Owns the mapping from Bitbucket's words to kinds: every server text
//! pattern lives here, with the capture it comes from (run/verdict.rs keeps
//! only the transport's own words for "nothing was sent"). Never does I/O,
//! never reads the environment, never names git2 (git/ turns its errors
//! into [`ErrorClass`] and [`ErrorCode`]). Depends only on the run's
//! vocabulary (`terms`, the report's types, the API context).

pub mod classify;
pub mod evidence;
pub mod merge_refusal;
mod remedies;

pub use evidence::{ErrorClass, ErrorCode, Evidence, GitErrorInfo, Situation, TagConflict};
