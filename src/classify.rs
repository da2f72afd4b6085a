//! Pure: evidence of a refusal -> blockage kind, explanation and remedies.
//!
//! No I/O. The evidence is what the transports captured: the HTTP status and
//! body of a refused request, the per-ref status from `push_update_reference`,
//! sideband lines, the SSH server's stderr and libgit2's error. Matching is
//! case-insensitive over trimmed lines. Each pattern cites the capture it comes
//! from (../shared/bitbucket-facts.md §1); texts the facts mark NOT CONFIRMED
//! are matched loosely and say so.

use crate::config::Transport;
use crate::credentials::CredentialKind;
use crate::report::{Blockage, BlockageKind, Remedy};

/// What a failed attempt left behind.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub http_status: Option<u16>,
    /// Server lines, trimmed, without the `remote: ` prefix: the text/plain
    /// body of a refused HTTP request, sideband lines, SSH stderr.
    pub remote_lines: Vec<String>,
    /// Per-ref status from the server, e.g. `pre-receive hook declined`.
    pub ref_status: Option<String>,
    pub git_error: Option<GitErrorInfo>,
    /// Files in conflict when the artifact commit could not be rebased.
    pub conflicts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitErrorInfo {
    pub class: String,
    pub code: String,
    pub message: String,
}

/// Facts about the run that shape the remedies.
#[derive(Debug, Clone)]
pub struct Situation {
    pub credential: CredentialKind,
    pub transport: Transport,
    pub branch: String,
    pub repository: Option<String>,
}

impl Evidence {
    fn haystack(&self) -> String {
        let mut text = self.remote_lines.join("\n");
        if let Some(s) = &self.ref_status {
            text.push('\n');
            text.push_str(s);
        }
        if let Some(e) = &self.git_error {
            text.push('\n');
            text.push_str(&e.message);
        }
        text.to_lowercase()
    }

    fn git_code(&self) -> &str {
        self.git_error
            .as_ref()
            .map(|e| e.code.as_str())
            .unwrap_or("")
    }

    fn git_class(&self) -> &str {
        self.git_error
            .as_ref()
            .map(|e| e.class.as_str())
            .unwrap_or("")
    }
}

/// Only the kind: used by the retry loop and table tests.
pub fn kind_of(e: &Evidence, credential: CredentialKind) -> BlockageKind {
    use BlockageKind::*;
    let t = e.haystack();
    let has = |needle: &str| t.contains(needle);
    let status = e.http_status.unwrap_or(0);

    if !e.conflicts.is_empty() {
        return RebaseConflict;
    }
    // KB 1155479141 scenario 2 ("authentication", git endpoint) and community
    // 787619 ("verification", LFS/API). Over SSH: NOT CONFIRMED, same words assumed.
    if has("enable two-step authentication") || has("enable two-step verification") {
        return TwoStepVerification;
    }
    // KB 1155479141 scenario 1. Over SSH: NOT CONFIRMED; "allowlist" matched loosely.
    if has("whitelist your ip") || has("allowlist your ip") || (has("ip") && has("allowlist")) {
        return IpAllowlist;
    }
    // atdev.blog capture (410) and the brownout notice (401/410) — facts §1(j).
    if has("app passwords are deprecated")
        || has("app password is deprecated")
        || has("app password") && status == 410
    {
        return AppPasswordRemoved;
    }
    if credential == CredentialKind::AppPassword && (status == 401 || status == 410) {
        return AppPasswordRemoved;
    }
    // Community 3129221 (git) and REST fixtures — facts §1(g).
    if has("lack one or more required privilege scopes") {
        return InsufficientScope;
    }
    // Deploy/access key push, with or without the old `conq: ` prefix — facts §1 "Additional".
    if has("access via a deployment key is read-only") || has("deploy key") && has("read-only") {
        return ReadOnlyKey;
    }
    // KB 1155479141 scenario 3; BCLOUD-16972 ("Not Found"); SSH `conq: repository does not exist.`
    if has("either does not exist or you do not have access")
        || has("repository does not exist")
        || status == 404
    {
        return RepositoryNotFound;
    }
    // "Reduce repository size" doc; push size limit blog. The 100 MB per-file
    // limit's text is NOT CONFIRMED: matched loosely on "size limit"/"exceeds".
    if has("over the size limit")
        || has("pack exceeds maximum allowed size")
        || has("file size limit")
        || (has("exceeds") && has("100 mb"))
    {
        return RepositorySizeLimit;
    }
    // Community 2249496 (current form) and BCLOUD-12157 (older lowercase).
    // Force-push and deletion restriction texts are NOT CONFIRMED: loose match.
    if has("permission denied to update branch")
        || has("rewriting history is not allowed")
        || has("deleting") && has("not allowed")
    {
        return BranchRestriction;
    }
    // Ref-lock races on the server and client-side non-fast-forward: retry.
    if has("cannot lock ref")
        || has("failed to update ref")
        || has("fetch first")
        || has("non-fast-forward")
        || e.git_code() == "NotFastForward"
    {
        return NonFastForward;
    }
    // KB 942864127 and the 2022 account-password text — facts §1(f); SSH
    // `Permission denied (publickey)` (KB 302811860); REST "Token is invalid".
    if has("invalid username or password")
        || has("invalid credentials")
        || has("stopped supporting account passwords")
        || has("token is invalid")
        || has("permission denied (publickey)")
        || status == 401
        || e.git_code() == "Auth"
    {
        return InvalidCredentials;
    }
    if status >= 500
        || matches!(e.git_class(), "Net" | "Os" | "Http")
        || has("timed out")
        || has("failed to connect")
        || has("failed to resolve")
        || has("could not resolve")
        || has("connection refused")
        || has("connection reset")
        || has("error sending request")
        || has("unexpected eof")
        || has("early eof")
    {
        return Network;
    }
    if e.ref_status.is_some() || status == 403 {
        return HookRejected;
    }
    Unknown
}

/// The full blockage for the report: kind, words, remedies.
pub fn classify(e: &Evidence, s: &Situation) -> Blockage {
    let kind = kind_of(e, s.credential);
    let (summary, explanation) = words(kind, e, s);
    Blockage {
        kind,
        summary,
        explanation,
        remote_messages: e.remote_lines.clone(),
        ref_status: e.ref_status.clone(),
        http_status: e.http_status,
        remedies: remedies(kind, s),
        files: e.conflicts.clone(),
    }
}

fn words(kind: BlockageKind, e: &Evidence, s: &Situation) -> (String, String) {
    use BlockageKind::*;
    let who = s.credential.describe();
    let branch = &s.branch;
    match kind {
        BranchRestriction => (
            format!("A branch restriction on '{branch}' refused the push."),
            match s.credential {
                CredentialKind::AccessToken => format!(
                    "Bitbucket refused the update of '{branch}' because a branch restriction limits who may write to it, and the push used {who}. Access tokens cannot be added to a restriction's allowed users (a Bitbucket limitation, BCLOUD-22400 / BCLOUD-19136), so this token can never be exempted."
                ),
                CredentialKind::Pipeline => format!(
                    "Bitbucket refused the update of '{branch}' because a branch restriction limits who may write to it. Pushes through the Pipelines auth proxy are subject to branch restrictions and cannot be exempted (BCLOUD-19136)."
                ),
                _ => format!(
                    "Bitbucket refused the update of '{branch}' because a branch restriction limits who may write to it, and the account behind {who} is not among the allowed users or groups."
                ),
            },
        ),
        TwoStepVerification => (
            "The workspace requires two-step verification and this account has not enabled it.".into(),
            format!(
                "The workspace enforces two-step verification (Premium access control). The account behind {who} has not enabled it, so Bitbucket refuses every git operation on its private repositories, before anything is sent."
            ),
        ),
        IpAllowlist => (
            "The workspace's IP allowlist refused this runner's address.".into(),
            "The workspace only accepts connections from allowlisted IP addresses and this machine's public address is not on the list. Bitbucket refused before anything was sent.".into(),
        ),
        InvalidCredentials => (
            format!("Bitbucket did not accept {who}."),
            "The credential was refused as invalid: it is wrong, expired or revoked, or the username does not match it. It was tried once only; retrying a wrong credential can lock the account.".into(),
        ),
        AppPasswordRemoved => (
            "App passwords no longer work on Bitbucket Cloud.".into(),
            "Bitbucket Cloud removed app passwords on 2026-07-28 (after brownouts from 2026-06-09); git and API calls made with one are refused. If this is a Bitbucket-compatible server that still accepts app passwords, the username or password is wrong.".into(),
        ),
        InsufficientScope => (
            format!("{} lacks a scope needed to push.", capitalise(who)),
            "Bitbucket reports that the credential lacks one or more required privilege scopes. Pushing needs read and write access to repositories.".into(),
        ),
        ReadOnlyKey => (
            "The SSH key is a read-only access key.".into(),
            "The key is a repository or project access key (deployment key). Access keys are read-only: they can clone but never push.".into(),
        ),
        RepositoryNotFound => (
            format!("The repository {} was not found, or this credential cannot see it.", s.repository.as_deref().unwrap_or("(from REMOTE_URL)")),
            "Bitbucket answers the same way whether the repository does not exist or the credential has no access to it.".into(),
        ),
        RepositorySizeLimit => (
            "The repository or the push is over a Bitbucket size limit.".into(),
            "Bitbucket refuses pushes when the repository is over its 4 GB limit, when a single push exceeds 3.5 GB, or when a file exceeds 100 MB (the per-file limit can be switched off per repository).".into(),
        ),
        NonFastForward => (
            format!("'{branch}' kept moving: the push lost every race."),
            "Other pushes updated the branch between each fetch and push, and the retries ran out.".into(),
        ),
        RebaseConflict => (
            format!("The artifacts conflict with changes made upstream on '{branch}'."),
            format!(
                "While this build ran, someone changed the same files on '{branch}': {}. The artifact commit cannot be replayed on top without a human decision.",
                e.conflicts.join(", ")
            ),
        ),
        Network => (
            "The git server could not be reached reliably.".into(),
            format!(
                "The connection failed or timed out{}. It was retried with backoff and kept failing.",
                e.http_status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
            ),
        ),
        HookRejected => (
            "A server-side hook refused the push.".into(),
            "The server refused the push with a message commit-back does not recognise; the server's own words are quoted below.".into(),
        ),
        Unknown if e.git_error.as_ref().is_some_and(|g| g.message.contains("SSH host key")) => (
            "The SSH server's host key could not be verified.".into(),
            format!(
                "{}. commit-back never trusts an SSH host on first use: it knows Bitbucket's published keys, the pipeline's known_hosts and KNOWN_HOSTS.",
                e.git_error.as_ref().map(|g| g.message.as_str()).unwrap_or_default()
            ),
        ),
        Unknown => (
            "The push failed for a reason commit-back does not recognise.".into(),
            e.git_error.as_ref().map(|g| g.message.clone()).unwrap_or_else(|| "No further detail was given.".into()),
        ),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn remedy(title: &str, steps: &[&str], docs: Option<&str>) -> Remedy {
    Remedy {
        title: title.into(),
        steps: steps.iter().map(|s| s.to_string()).collect(),
        docs: docs.map(str::to_owned),
    }
}

const DOCS_BRANCH_RESTRICTIONS: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/use-branch-permissions/";
const DOCS_API_TOKENS: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/using-api-tokens/";
const DOCS_ACCESS_TOKENS: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/access-tokens/";
const DOCS_2SV: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/enable-two-step-verification/";
const DOCS_ACCESS_CONTROL: &str = "https://support.atlassian.com/bitbucket-cloud/docs/control-access-to-private-content-in-a-workspace/";
const DOCS_SIZE: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/reduce-repository-size/";
const DOCS_SSH_KEYS: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/set-up-personal-ssh-keys-on-linux/";

fn remedies(kind: BlockageKind, s: &Situation) -> Vec<Remedy> {
    use BlockageKind::*;
    let bot_api_token = remedy(
        "Push as a bot account with an API token, allowed by the restriction",
        &[
            "Create (or pick) a bot Atlassian account with write access to the repository.",
            "As that account: id.atlassian.com > Security > Create API token with scopes > Bitbucket, scopes read:repository:bitbucket and write:repository:bitbucket.",
            "Repository settings > Branch restrictions > edit the rule for the branch > Write access: add the bot account.",
            "Set secured variables ATLASSIAN_ACCOUNT_EMAIL (the bot's e-mail) and ATLASSIAN_API_TOKEN, and remove BITBUCKET_ACCESS_TOKEN from the pipe.",
        ],
        Some(DOCS_API_TOKENS),
    );
    match kind {
        BranchRestriction => {
            let mut list = Vec::new();
            if matches!(
                s.credential,
                CredentialKind::AccessToken | CredentialKind::Pipeline
            ) {
                list.push(bot_api_token);
                list.push(remedy(
                    "Push with the bot account's SSH key",
                    &[
                        "Add an SSH key to the bot account (Personal settings > SSH keys), and allow the bot in the branch restriction.",
                        "Set SSH_KEY to the private key, base64-encoded (`base64 -w 0 < key`), as a secured variable.",
                    ],
                    Some(DOCS_SSH_KEYS),
                ));
            } else {
                list.push(remedy(
                    "Allow this account to write to the branch",
                    &[
                        &format!("Repository settings > Branch restrictions: find the rule matching '{}' with Write access limited.", s.branch),
                        "Add the account that owns this credential (or a group it belongs to) to the users allowed to write.",
                    ],
                    Some(DOCS_BRANCH_RESTRICTIONS),
                ));
            }
            list
        }
        TwoStepVerification => vec![
            remedy(
                "Enable two-step verification on the bot account",
                &[
                    "Log in to Bitbucket as the account that owns this credential.",
                    "Personal settings > Two-step verification: enable it. API tokens and SSH keys then keep working without prompts.",
                ],
                Some(DOCS_2SV),
            ),
            remedy(
                "Use an access token instead",
                &[
                    "Access tokens are exempt from two-step verification: set BITBUCKET_ACCESS_TOKEN (scope repository:write). They cannot pass branch restrictions.",
                ],
                Some(DOCS_ACCESS_TOKENS),
            ),
            remedy(
                "Enforce 2SV through Atlassian Guard instead",
                &[
                    "An organisation admin can manage two-step verification centrally with Atlassian Guard.",
                ],
                Some(DOCS_ACCESS_CONTROL),
            ),
        ],
        IpAllowlist => vec![remedy(
            "Allow the runner's addresses",
            &[
                "Workspace settings > Access controls > IP allowlisting: add the public IP ranges of Bitbucket Pipelines (or of your self-hosted runner).",
                "Or run this step on a self-hosted runner whose address is already allowed.",
            ],
            Some(DOCS_ACCESS_CONTROL),
        )],
        InvalidCredentials => vec![match s.credential {
            CredentialKind::AccessToken => remedy(
                "Check the access token",
                &[
                    "Recreate the access token (Repository settings > Access tokens) with scope repository:write and update BITBUCKET_ACCESS_TOKEN.",
                ],
                Some(DOCS_ACCESS_TOKENS),
            ),
            CredentialKind::ApiToken => remedy(
                "Check the API token and e-mail",
                &[
                    "ATLASSIAN_ACCOUNT_EMAIL must be the e-mail of the account that created ATLASSIAN_API_TOKEN.",
                    "API tokens expire (at most one year): create a new one with scopes read:repository:bitbucket and write:repository:bitbucket.",
                    "If BITBUCKET_USERNAME is set, it must be that account's Bitbucket username (or unset it to use x-bitbucket-api-token-auth).",
                ],
                Some(DOCS_API_TOKENS),
            ),
            CredentialKind::SshKey => remedy(
                "Register the SSH key",
                &[
                    "Add the public half of SSH_KEY to the bot account (Personal settings > SSH keys) or as a workspace SSH key.",
                ],
                Some(DOCS_SSH_KEYS),
            ),
            _ => remedy(
                "Give the pipe a credential",
                &[
                    "Set BITBUCKET_ACCESS_TOKEN, or ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN, or SSH_KEY.",
                ],
                Some(DOCS_API_TOKENS),
            ),
        }],
        AppPasswordRemoved => vec![remedy(
            "Switch to an API token",
            &[
                "As the account that owned the app password: id.atlassian.com > Security > Create API token with scopes > Bitbucket, scopes read:repository:bitbucket and write:repository:bitbucket.",
                "Set ATLASSIAN_ACCOUNT_EMAIL and ATLASSIAN_API_TOKEN as secured variables; keep BITBUCKET_USERNAME only if you want git to use that username.",
                "Remove BITBUCKET_APP_PASSWORD.",
            ],
            Some(DOCS_API_TOKENS),
        )],
        InsufficientScope => vec![remedy(
            "Grant the scopes needed to push",
            &[match s.credential {
                CredentialKind::AccessToken => {
                    "Create a new access token with scope repository:write (tokens' scopes cannot be edited) and update BITBUCKET_ACCESS_TOKEN."
                }
                _ => {
                    "Create a new API token with scopes read:repository:bitbucket and write:repository:bitbucket (neither implies the other) and update ATLASSIAN_API_TOKEN."
                }
            }],
            Some(DOCS_API_TOKENS),
        )],
        ReadOnlyKey => vec![remedy(
            "Use a key that can write",
            &[
                "Access keys are read-only. Add the key to a (bot) account under Personal settings > SSH keys instead, or use a workspace SSH key.",
                "Or switch to an HTTP credential: BITBUCKET_ACCESS_TOKEN or ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN.",
            ],
            Some(DOCS_SSH_KEYS),
        )],
        RepositoryNotFound => vec![remedy(
            "Check the repository and the credential's access",
            &[
                "Check REPOSITORY (workspace/repo_slug) or REMOTE_URL for typos.",
                "Make sure the credential belongs to this repository (repository access tokens only see their own repository) or its account has at least write access.",
            ],
            None,
        )],
        RepositorySizeLimit => vec![remedy(
            "Reduce what is pushed",
            &[
                "Keep large build outputs out of git (Pipelines artifacts or Downloads), or track them with Git LFS.",
                "If a single file is over 100 MB, Repository settings > Advanced can disable the per-file limit.",
                "If the repository is over 4 GB, follow the guide to reduce its size.",
            ],
            Some(DOCS_SIZE),
        )],
        NonFastForward => vec![remedy(
            "Retry, or allow more attempts",
            &[
                "Rerun the step, or raise RETRIES (default 3) when many builds push to the same branch.",
            ],
            None,
        )],
        RebaseConflict => vec![remedy(
            "Resolve the conflict by hand",
            &[
                "Apply the saved patch on the current branch: `git am --3way <patch>`, resolve the named files, and push.",
                "Or rerun the pipeline on the latest commit so the artifacts are generated from it.",
            ],
            None,
        )],
        Network => vec![remedy(
            "Check connectivity",
            &[
                "Rerun the step; if it persists, check https://bitbucket.status.atlassian.com and any proxy settings (HTTPS_PROXY, NO_PROXY), or raise NETWORK_TIMEOUT.",
            ],
            None,
        )],
        HookRejected | Unknown => vec![remedy(
            "Read the server's message",
            &[
                "The server's own words are in remote_messages; rerun with DEBUG=true for more detail.",
            ],
            None,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BlockageKind::*;

    fn http(status: u16, body: &str) -> Evidence {
        Evidence {
            http_status: Some(status),
            remote_lines: body.lines().map(|l| l.trim().to_owned()).collect(),
            ..Default::default()
        }
    }

    fn hook(lines: &str) -> Evidence {
        Evidence {
            remote_lines: lines.lines().map(|l| l.trim().to_owned()).collect(),
            ref_status: Some("pre-receive hook declined".into()),
            ..Default::default()
        }
    }

    fn git(class: &str, code: &str, message: &str) -> Evidence {
        Evidence {
            git_error: Some(GitErrorInfo {
                class: class.into(),
                code: code.into(),
                message: message.into(),
            }),
            ..Default::default()
        }
    }

    /// Every server text in bitbucket-facts.md §1, with the kind it must give.
    #[test]
    fn facts_table() {
        use CredentialKind::*;
        let cases: Vec<(Evidence, CredentialKind, BlockageKind)> = vec![
            (
                hook("Permission denied to update branch main.        "),
                AccessToken,
                BranchRestriction,
            ),
            (
                hook("permission denied to update branch develop"),
                SshKey,
                BranchRestriction,
            ),
            (
                hook("Rewriting history is not allowed for branch main"),
                ApiToken,
                BranchRestriction,
            ),
            (
                http(
                    403,
                    "To access this repository, enable two-step authentication. ",
                ),
                ApiToken,
                TwoStepVerification,
            ),
            (
                http(
                    403,
                    "{\"type\": \"error\", \"error\": {\"message\": \"To access this repository, enable two-step verification.\"}}",
                ),
                ApiToken,
                TwoStepVerification,
            ),
            (
                http(
                    403,
                    "To access this repository, an admin must whitelist your IP. ",
                ),
                AccessToken,
                IpAllowlist,
            ),
            (
                http(
                    401,
                    "Invalid username or password. Invalid username or password. If your organization manages your account or you’ve enabled two-step verification, create an app password to log in: https://confluence.atlassian.com/x/9DJmMQ",
                ),
                ApiToken,
                InvalidCredentials,
            ),
            (
                http(401, "Invalid credentials"),
                AccessToken,
                InvalidCredentials,
            ),
            (
                http(
                    401,
                    "Bitbucket Cloud recently stopped supporting account passwords for Git authentication.",
                ),
                ApiToken,
                InvalidCredentials,
            ),
            (
                http(
                    401,
                    "Token is invalid, expired, or not supported for this endpoint.",
                ),
                ApiToken,
                InvalidCredentials,
            ),
            (http(401, ""), AccessToken, InvalidCredentials),
            (
                http(
                    403,
                    "Your credentials lack one or more required privilege scopes.",
                ),
                ApiToken,
                InsufficientScope,
            ),
            (
                http(
                    403,
                    "The requested repository either does not exist or you do not have access. If you believe this repository exists and you have access, make sure you're authenticated.",
                ),
                AccessToken,
                RepositoryNotFound,
            ),
            (http(404, "Not Found"), AccessToken, RepositoryNotFound),
            (
                git("Ssh", "Eof", "conq: repository does not exist."),
                SshKey,
                RepositoryNotFound,
            ),
            (
                hook(
                    "Repository is over the size limit (4 GB) and will not accept further additions.\n\nLearn how to reduce your repository size: https://confluence.atlassian.com/x/xgMvEw.\n'",
                ),
                AccessToken,
                RepositorySizeLimit,
            ),
            (
                hook("fatal: pack exceeds maximum allowed size."),
                AccessToken,
                RepositorySizeLimit,
            ),
            (
                http(
                    410,
                    "App passwords are deprecated and must be replaced with API tokens.",
                ),
                AppPassword,
                AppPasswordRemoved,
            ),
            (http(401, ""), AppPassword, AppPasswordRemoved),
            (
                git(
                    "Ssh",
                    "Eof",
                    "repository access denied. access via a deployment key is read-only.",
                ),
                SshKey,
                ReadOnlyKey,
            ),
            (
                git(
                    "Ssh",
                    "Eof",
                    "conq: repository access denied. access via a deployment key is read-only.",
                ),
                SshKey,
                ReadOnlyKey,
            ),
            (
                git(
                    "Ssh",
                    "Auth",
                    "Failed to authenticate SSH session: Unable to send userauth-publickey request",
                ),
                SshKey,
                InvalidCredentials,
            ),
            (
                git(
                    "Reference",
                    "NotFastForward",
                    "cannot push non-fastforwardable reference",
                ),
                AccessToken,
                NonFastForward,
            ),
            (
                Evidence {
                    ref_status: Some("failed to update ref".into()),
                    ..Default::default()
                },
                AccessToken,
                NonFastForward,
            ),
            (
                hook("error: cannot lock ref 'refs/heads/main': is at 1234 but expected 5678"),
                AccessToken,
                NonFastForward,
            ),
            (http(502, "Bad Gateway"), AccessToken, Network),
            (
                git(
                    "Net",
                    "GenericError",
                    "failed to connect to 127.0.0.1: Connection refused",
                ),
                AccessToken,
                Network,
            ),
            (hook("Custom policy says no."), AccessToken, HookRejected),
            (
                git("Odb", "GenericError", "object not found"),
                AccessToken,
                Unknown,
            ),
        ];
        for (i, (evidence, cred, expected)) in cases.iter().enumerate() {
            assert_eq!(
                kind_of(evidence, *cred),
                *expected,
                "case {i}: {evidence:?}"
            );
        }
    }

    #[test]
    fn conflicts_win_and_are_named() {
        let e = Evidence {
            conflicts: vec!["ids.json".into()],
            ..Default::default()
        };
        let s = Situation {
            credential: CredentialKind::AccessToken,
            transport: Transport::Http,
            branch: "main".into(),
            repository: None,
        };
        let b = classify(&e, &s);
        assert_eq!(b.kind, RebaseConflict);
        assert!(b.explanation.contains("ids.json"));
        assert_eq!(b.files, ["ids.json"]);
    }

    #[test]
    fn branch_restriction_remedies_fit_the_credential() {
        let e = hook("Permission denied to update branch main.");
        let mut s = Situation {
            credential: CredentialKind::AccessToken,
            transport: Transport::Http,
            branch: "main".into(),
            repository: None,
        };
        let b = classify(&e, &s);
        assert!(b.explanation.contains("cannot be added"));
        assert!(
            b.remedies[0]
                .steps
                .iter()
                .any(|s| s.contains("ATLASSIAN_API_TOKEN"))
        );
        assert!(b.remedies[1].steps.iter().any(|s| s.contains("SSH_KEY")));
        s.credential = CredentialKind::ApiToken;
        let b = classify(&e, &s);
        assert!(b.remedies[0].title.contains("Allow this account"));
        assert_eq!(b.ref_status.as_deref(), Some("pre-receive hook declined"));
        assert_eq!(
            b.remote_messages,
            ["Permission denied to update branch main."]
        );
    }
}
