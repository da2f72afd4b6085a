//! `commit-back --help`: generated from the same sources as the behaviour
//! (the documented variables, the credential kinds, the statuses and the
//! exit-code policy itself), so it cannot drift.

use crate::report::{Blockage, BlockageKind, Report, Status};
use crate::variables::VARIABLES;

const KINDS: &[BlockageKind] = &[
    BlockageKind::InvalidCredentials,
    BlockageKind::AppPasswordRemoved,
    BlockageKind::BranchRestriction,
    BlockageKind::TwoStepVerification,
    BlockageKind::IpAllowlist,
    BlockageKind::InsufficientScope,
    BlockageKind::ReadOnlyKey,
    BlockageKind::RepositoryNotFound,
    BlockageKind::NonFastForward,
    BlockageKind::RebaseConflict,
    BlockageKind::TagExists,
    BlockageKind::Network,
    BlockageKind::RepositorySizeLimit,
    BlockageKind::LfsRefused,
    BlockageKind::LfsStorageQuota,
    BlockageKind::SignatureRequired,
    BlockageKind::HookRejected,
    BlockageKind::Unknown,
];

const STATUSES: &[Status] = &[
    Status::Pushed,
    Status::NothingToCommit,
    Status::PullRequest,
    Status::DryRun,
    Status::Blocked,
    Status::InvalidConfiguration,
    Status::Failed,
];

fn code(v: impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The exit code the report policy gives a blocked run of this kind.
fn exit_for(kind: BlockageKind) -> u8 {
    let mut r = Report::new(Status::Blocked, "");
    r.blockage = Some(Blockage::of_kind(kind));
    r.exit_code()
}

pub fn text() -> String {
    let mut out = format!(
        "commit-back {}\nCommit build artifacts and push them back to Bitbucket, explaining every refusal.\n\n\
         Usage: commit-back            (configured only by environment variables; runs in the current directory)\n       \
         commit-back --help | --version\n\nVariables:\n",
        env!("CARGO_PKG_VERSION")
    );
    for v in VARIABLES {
        let default = if v.default.is_empty() {
            String::new()
        } else {
            format!(" [default: {}]", v.default)
        };
        out.push_str(&format!("  {:<24}{}{}\n", v.name, v.description, default));
    }
    out.push_str(
        "\nCredentials (the first complete one wins):\n  1 access_token   BITBUCKET_ACCESS_TOKEN\n  2 api_token      ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN\n  \
         3 app_password   BITBUCKET_USERNAME + BITBUCKET_APP_PASSWORD (legacy)\n  4 ssh_key        SSH_KEY (base64), or AUTH=ssh for the pipeline's key\n  \
         5 pipeline       none of these, in Pipelines: the auth proxy\n",
    );
    out.push_str("\nOutput: one JSON report on stdout (every run), the log on stderr.\n\nStatuses and exit codes:\n");
    for s in STATUSES {
        let r = Report::new(*s, "");
        if *s == Status::Blocked {
            out.push_str(&format!("  {:<24}by kind, below\n", code(s)));
        } else {
            out.push_str(&format!("  {:<24}{}\n", code(s), r.exit_code()));
        }
    }
    out.push_str("\nBlockage kinds and exit codes:\n");
    for k in KINDS {
        out.push_str(&format!("  {:<24}{}\n", code(k), exit_for(*k)));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_names_every_variable_and_code() {
        let t = super::text();
        for v in crate::variables::VARIABLES {
            assert!(t.contains(v.name), "{}", v.name);
        }
        assert!(t.contains("branch_restriction      4"));
        assert!(t.contains("invalid_configuration   2"));
        assert!(t.contains("repository_size_limit   10"));
    }
}
