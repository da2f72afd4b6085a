//! Pure: the API's refusal to merge the fallback pull request
//! (ON_RESTRICTED=merge) -> kind, explanation and remedies.
//!
//! Bitbucket's merge refusal texts are NOT CONFIRMED (bitbucket-facts.md,
//! "Branch restrictions"): the statuses come from the published spec (409:
//! a ref changed while merging; 555: the merge timed out), the words are
//! matched loosely and case-insensitively, and the explanation always
//! quotes Bitbucket's own message. No I/O.

use crate::report::{MergeRefusal, Remedy};
use crate::terms::CredentialKind;

pub use crate::report::MergeRefusalKind;

/// Facts about the run that shape the remedies.
pub struct MergeSituation<'a> {
    pub credential: CredentialKind,
    pub branch: &'a str,
    pub strategy: &'a str,
    pub pull_request_url: &'a str,
}

/// The kind only: the merge loop asks it to decide on a retry.
pub fn kind_of(status: Option<u16>, message: &str) -> MergeRefusalKind {
    use MergeRefusalKind::*;
    let t = message.to_lowercase();
    let has = |needle: &str| t.contains(needle);
    if status == Some(555) || has("timed out") {
        return TimedOut;
    }
    // No answer at all: the message is the network's, not Bitbucket's.
    if status.is_none() {
        return Network;
    }
    if status == Some(409)
        || (has("fast-forward") || has("fast forward"))
        || has("out of date")
        || has("behind")
        || has("has moved")
        || has("changed while")
    {
        return DestinationMoved;
    }
    if has("strategy") {
        return MergeStrategy;
    }
    if has("approv")
        || has("build")
        || has("merge check")
        || has("task")
        || has("changes requested")
        || has("comment")
    {
        return MergeChecks;
    }
    if status == Some(403)
        || has("permission")
        || has("not allowed")
        || has("restrict")
        || has("not authorized")
    {
        return MergeRestricted;
    }
    Unknown
}

/// The refusal for the API's answer (`status`, `message`).
/// A refusal commit-back found itself (no API answer to quote): `why` is
/// its own sentence.
pub fn local(
    kind: MergeRefusalKind,
    summary: String,
    why: &str,
    s: &MergeSituation<'_>,
) -> MergeRefusal {
    let mut refusal = classify_as(kind, None, why, s);
    refusal.summary = summary;
    refusal.explanation = format!("{why}.");
    refusal.message = why.to_owned();
    refusal
}

pub fn classify(status: Option<u16>, message: &str, s: &MergeSituation<'_>) -> MergeRefusal {
    classify_as(kind_of(status, message), status, message, s)
}

/// As [`classify`], for a kind decided otherwise (git showed the
/// destination moved, whatever the words said).
pub fn classify_as(
    kind: MergeRefusalKind,
    status: Option<u16>,
    message: &str,
    s: &MergeSituation<'_>,
) -> MergeRefusal {
    use MergeRefusalKind::*;
    let branch = s.branch;
    let quoted = match status {
        Some(code) => format!("The API answered HTTP {code}: \"{}\".", message.trim()),
        None => format!("The API gave no answer: {}.", message.trim()),
    };
    let by_hand = format!(
        "The pull request stays open: merge it by hand at {}, or let someone allowed to merge do it.",
        s.pull_request_url
    );
    let (summary, why, remedies) = match kind {
        MergeRestricted => (
            format!("This credential may not merge pull requests into '{branch}'."),
            "A branch restriction limits who may merge pull requests into the branch (\"Merge via pull request\", a list apart from \"Write access\"), or the credential lacks write permission.".to_owned(),
            vec![
                remedy(
                    "Allow the credential to merge",
                    &[
                        &format!("In Repository settings > Branch restrictions, add the account behind the credential to the \"Merge via pull request\" list of '{branch}' (a restriction can name users and groups)."),
                        match s.credential {
                            CredentialKind::AccessToken | CredentialKind::Pipeline => "Access tokens (and the pipeline's own credential) cannot be named in a restriction: push as a bot account with an API token (ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN) and add that account.",
                            _ => "The API token needs the pull-request scopes read:pullrequest:bitbucket and write:pullrequest:bitbucket.",
                        },
                    ],
                ),
                remedy("Merge it by hand", &[&by_hand]),
            ],
        ),
        MergeChecks => (
            format!("The pull request into '{branch}' does not pass its merge checks yet."),
            "The branch's merge checks (approvals, passing builds, resolved tasks) are not met. The artifact commit carries [skip ci] (unless SKIP_CI=false), so a build that a check waits for may never start on it by itself.".to_owned(),
            vec![
                remedy(
                    "Meet the checks, then merge",
                    &[
                        &by_hand,
                        "If builds are required: set SKIP_CI=false so a pipeline runs on the pull request's commit (LOOP_GUARD stops the commit-back step it starts from committing again), or enable \"merge when builds pass\" on the pull request in Bitbucket's web interface (no API for it is known).",
                        "If approvals are required: a reviewer approves the pull request, then merges it.",
                    ],
                ),
            ],
        ),
        MergeStrategy => (
            format!("The repository does not allow the '{}' merge strategy.", s.strategy),
            format!("MERGE_STRATEGY is {}, and the repository's settings do not allow it for '{branch}'.", s.strategy),
            vec![remedy(
                "Use an allowed strategy",
                &["Set MERGE_STRATEGY to a strategy the repository allows (fast_forward keeps the artifact commit itself, with its signature; merge_commit and squash make a new commit on the branch)."],
            )],
        ),
        DestinationMoved => (
            format!("'{branch}' kept moving and the merge retries ran out."),
            format!("Bitbucket could not merge because '{branch}' moved on; the pull request's branch was rebased and the merge tried again until RETRIES ran out."),
            vec![remedy("Merge it by hand, or run again", &[&by_hand, "Or rerun the step: the next run rebases onto the new tip."])],
        ),
        TimedOut => (
            "Bitbucket did not finish the merge in time.".to_owned(),
            "The merge ran too long on Bitbucket's side (HTTP 555), or its task did not finish while commit-back waited; it may still complete.".to_owned(),
            vec![remedy("Check the pull request", &[&by_hand])],
        ),
        Network => (
            "The Bitbucket API could not be reached to merge the pull request.".to_owned(),
            "The merge request got no answer, and the retries ran out; the merge may or may not have happened.".to_owned(),
            vec![remedy("Check the pull request", &[&by_hand])],
        ),
        Unknown => (
            format!("Bitbucket did not merge the pull request into '{branch}'."),
            "The API refused the merge with an answer commit-back does not recognise.".to_owned(),
            vec![remedy("Read Bitbucket's message", &[&by_hand])],
        ),
    };
    MergeRefusal {
        kind,
        summary,
        explanation: format!("{why} {quoted}"),
        http_status: status,
        message: message.trim().to_owned(),
        remedies,
    }
}

fn remedy(title: &str, steps: &[&str]) -> Remedy {
    Remedy {
        title: title.into(),
        steps: steps.iter().map(|s| s.to_string()).collect(),
        docs: Some(DOCS_BRANCH_RESTRICTIONS.into()),
    }
}

const DOCS_BRANCH_RESTRICTIONS: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/use-branch-permissions/";

#[cfg(test)]
mod tests {
    use super::*;
    use MergeRefusalKind::*;

    /// The stand-in's texts and plausible variants: none is a confirmed
    /// Bitbucket text, so each kind is held to its loose words and statuses.
    #[test]
    fn refusals_are_read_by_status_and_loose_words() {
        let table = [
            (Some(409), "Conflict", DestinationMoved),
            (
                Some(400),
                "Fast-forward merge is not possible: the destination has moved",
                DestinationMoved,
            ),
            (Some(555), "Merge timed out", TimedOut),
            (
                Some(400),
                "The merge strategy squash is not allowed for this branch",
                MergeStrategy,
            ),
            (
                Some(400),
                "Merge checks failed: requires 2 approvals",
                MergeChecks,
            ),
            (
                Some(400),
                "You need at least 1 successful build to merge",
                MergeChecks,
            ),
            (
                Some(403),
                "You are not allowed to merge into main",
                MergeRestricted,
            ),
            (Some(403), "Forbidden", MergeRestricted),
            (Some(400), "Something else", Unknown),
            (None, "connection reset by peer", Network),
        ];
        for (status, message, kind) in table {
            assert_eq!(kind_of(status, message), kind, "{status:?} {message}");
            assert_eq!(kind_of(status, &message.to_uppercase()), kind);
        }
    }

    #[test]
    fn every_refusal_quotes_bitbucket_and_has_a_remedy() {
        let s = MergeSituation {
            credential: CredentialKind::AccessToken,
            branch: "main",
            strategy: "fast_forward",
            pull_request_url: "https://bitbucket.org/ws/repo/pull-requests/1",
        };
        for message in [
            "Forbidden",
            "requires 2 approvals",
            "strategy",
            "Conflict",
            "x",
        ] {
            let r = classify(Some(400), message, &s);
            assert!(r.explanation.contains(message), "{r:?}");
            assert!(!r.remedies.is_empty());
        }
        let restricted = classify(Some(403), "Forbidden", &s);
        assert!(restricted.remedies[0].steps[1].contains("Access tokens"));
    }
}
