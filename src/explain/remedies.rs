//! Remedies: the concrete steps that fix a refusal in this user's situation
//! (credential kind, what the API said, ON_RESTRICTED). Pure; pinned by
//! snapshot tests in `classify`.

use super::evidence::{Evidence, Situation, tls_certificate_refused};
use crate::report::{BlockageKind, Remedy};
use crate::terms::CredentialKind;
use crate::terms::OnRestricted;

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
const DOCS_LFS_STORAGE: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/storage-policy-for-git-lfs/";
const DOCS_SSH_SIGNING: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/use-ssh-keys-to-sign-commits/";
const DOCS_GPG_SIGNING: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/use-gpg-keys-to-sign-commits/";
const DOCS_SSH_KEYS: &str =
    "https://support.atlassian.com/bitbucket-cloud/docs/set-up-personal-ssh-keys-on-linux/";

pub fn remedies(kind: BlockageKind, e: &Evidence, s: &Situation) -> Vec<Remedy> {
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
        BranchRestriction => branch_restriction(s, bot_api_token),
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
                "Keep large build outputs out of git (Pipelines artifacts or Downloads), or track them with Git LFS: `git lfs track '<pattern>'` adds `<pattern> filter=lfs diff=lfs merge=lfs -text` to .gitattributes, and commit-back then commits a pointer and uploads the file itself.",
                "If a single file is over 100 MB, Repository settings > Advanced can disable the per-file limit.",
                "If the repository is over 4 GB, follow the guide to reduce its size.",
            ],
            Some(DOCS_SIZE),
        )],
        LfsRefused => {
            let mut list = Vec::new();
            if s.credential == CredentialKind::Pipeline {
                // Whether the Pipelines auth proxy allows LFS is NOT CONFIRMED
                // (bitbucket-facts.md, "Size limits and Git LFS").
                list.push(remedy(
                    "Give commit-back its own credential for LFS",
                    &[
                        "Whether the Pipelines auth proxy lets LFS uploads through is not documented; set BITBUCKET_ACCESS_TOKEN (a repository access token with write access) or ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN on the pipe.",
                    ],
                    Some(DOCS_ACCESS_TOKENS),
                ));
            }
            list.push(remedy(
                "Check the credential's write access and the LFS settings",
                &[
                    "LFS uploads need write access to the repository, like a push: check the credential's permission (or scopes: write:repository:bitbucket).",
                    "If these files should not be in LFS, remove their `filter=lfs` line from .gitattributes.",
                ],
                None,
            ));
            list
        }
        SignatureRequired => signature_remedies(s),
        LfsStorageQuota => vec![remedy(
            "Free LFS storage, or add more",
            &[
                "Bitbucket plans include 1 GB (Free), 5 GB (Standard) or 10 GB (Premium) of LFS storage, and more can be bought in 100 GB units (see the storage policy below).",
                "Delete LFS files the repository no longer needs, or keep large build outputs out of git (Pipelines artifacts or Downloads).",
            ],
            Some(DOCS_LFS_STORAGE),
        )],
        NonFastForward => vec![remedy(
            "Retry, or allow more attempts",
            &[
                "Rerun the step, or raise RETRIES (default 3) when many builds push to the same branch.",
            ],
            None,
        )],
        RebaseConflict => vec![Remedy {
            title: "Resolve the conflict by hand".into(),
            steps: vec![
                format!("Upstream changed {} while this build ran.", e.conflicts.join(", ")),
                "Fetch the branch, apply the saved patch with `git am --3way <patch>` (see recovery), resolve those files, commit and push.".into(),
                "Or rerun the pipeline on the latest commit so the artifacts are generated from it.".into(),
            ],
            docs: None,
        }],
        TagExists => vec![remedy(
            "Choose a new tag, or delete the old one on purpose",
            &[
                "Derive TAG from something that changes with each release (e.g. TAG=v1.4.$BITBUCKET_BUILD_NUMBER).",
                "If the existing tag is wrong, delete it deliberately (`git push origin :refs/tags/<tag>`) and rerun.",
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
        Unknown if tls_certificate_refused(e) => vec![remedy(
            "Trust the certificate authority that signed the server's certificate",
            &[
                "If a company proxy inspects HTTPS, set SSL_CERT_FILE to a PEM bundle holding its CA certificate (with docker run, mount the file into the container).",
                "Otherwise check that REMOTE_URL names the real server and that the machine's clock is right.",
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

const PULL_REQUEST_STEP: &str = "Set ON_RESTRICTED=pull-request on the pipe: the commit goes to a side branch (PR_BRANCH) and a pull request to the restricted branch is opened for someone allowed to merge.";

/// Branch restrictions: ranked options for access tokens and the pipeline
/// (which can never be allowed), the rule and who may push for user credentials.
fn branch_restriction(s: &Situation, bot_api_token: Remedy) -> Vec<Remedy> {
    let pull_request = remedy(
        "Open a pull request instead of pushing",
        &[PULL_REQUEST_STEP],
        Some(DOCS_BRANCH_RESTRICTIONS),
    );
    let mut list = Vec::new();
    if matches!(
        s.credential,
        CredentialKind::AccessToken | CredentialKind::Pipeline
    ) {
        if s.on_restricted == OnRestricted::Fail {
            list.push(pull_request);
        }
        list.push(bot_api_token);
        list.push(remedy(
            "Push with the bot account's SSH key",
            &[
                "Add an SSH key to the bot account (Personal settings > SSH keys), and allow the bot in the branch restriction.",
                "Set SSH_KEY to the private key, base64-encoded (`base64 -w 0 < key`), as a secured variable, and remove BITBUCKET_ACCESS_TOKEN.",
            ],
            Some(DOCS_SSH_KEYS),
        ));
        return list;
    }
    let who = s
        .api
        .as_ref()
        .and_then(|a| a.identity.as_ref())
        .and_then(|i| i.display_name.clone())
        .map(|n| format!("'{n}'"))
        .unwrap_or_else(|| "the account that owns this credential".into());
    let mut steps = Vec::new();
    match s.api.as_ref().and_then(|a| a.rules.as_ref()) {
        Some(rules) if !rules.is_empty() => {
            for r in rules {
                let allowed = match (r.users.is_empty(), r.groups.is_empty()) {
                    (true, true) => "nobody may push".to_string(),
                    _ => format!(
                        "only {}{}{} may push",
                        if r.users.is_empty() {
                            String::new()
                        } else {
                            format!("users {}", r.users.join(", "))
                        },
                        if r.users.is_empty() || r.groups.is_empty() {
                            ""
                        } else {
                            " and "
                        },
                        if r.groups.is_empty() {
                            String::new()
                        } else {
                            format!("groups {}", r.groups.join(", "))
                        }
                    ),
                };
                steps.push(format!(
                    "Rule {} ({} on '{}'): {allowed}.",
                    r.id.map(|i| format!("#{i}")).unwrap_or_default(),
                    r.kind,
                    r.pattern
                ));
            }
            steps.push(format!("Repository settings > Branch restrictions: add {who} (or a group it belongs to) to that rule's Write access."));
        }
        _ => {
            if let Some(note) = s
                .api
                .as_ref()
                .and_then(|a| a.notes.iter().find(|n| n.contains("branch restrictions")))
            {
                steps.push(note.clone());
            }
            steps.push(format!(
                "Repository settings > Branch restrictions: find the rules matching '{}' with Write access limited, and add {who} (or a group it belongs to).",
                s.branch
            ));
        }
    }
    list.push(Remedy {
        title: "Allow this account to write to the branch".into(),
        steps,
        docs: Some(DOCS_BRANCH_RESTRICTIONS.into()),
    });
    if s.on_restricted == OnRestricted::Fail {
        list.push(pull_request);
    }
    list
}

/// A refusal about signatures: sign, or make the signature one Bitbucket can
/// tie to an account (key registered for signing, committer e-mail verified).
fn signature_remedies(s: &Situation) -> Vec<Remedy> {
    let token = matches!(
        s.credential,
        CredentialKind::AccessToken | CredentialKind::Pipeline
    );
    let owner = if token {
        "Signing keys are added to an Atlassian account (a bot account is usual), as Atlassian's guide describes, not to an access token: the signing account need not be the one that pushes."
    } else {
        "Signing keys are added to an Atlassian account (a bot account is usual), as Atlassian's guide describes; it need not be the account that pushes."
    };
    let email = format!(
        "Set AUTHOR_EMAIL (now {}) to a verified e-mail address of that account: Bitbucket matches the committer e-mail against the key owner's verified addresses.",
        s.committer_email
    );
    match &s.signed_with {
        None => vec![remedy(
            "Sign the artifact commits",
            &[
                owner,
                "Create a key for signing: an OpenPGP key with gpg (`gpg --quick-gen-key 'Bot <bot@example.com>' ed25519 sign`; Atlassian's notice on enforced signed commits names GPG keys), or an SSH key (`ssh-keygen -t ed25519 -N '' -C bot -f bot_signing`).",
                "As the account that will own it, add the public key as a signing key, as the guide describes.",
                "Add a secured repository variable SIGNING_KEY with `gpg --armor --export-secret-keys KEYID | base64 -w 0` (or `base64 -w 0 < bot_signing`); commit-back signs every commit and tag with it.",
                &email,
            ],
            Some(DOCS_GPG_SIGNING),
        )],
        Some(key) => vec![remedy(
            "Make the signature verifiable by Bitbucket",
            &[
                &format!("The commits were signed with the {key}."),
                "Add its public key to the owning account as a signing key, as the guide describes (SSH keys: Atlassian's \"Use SSH keys to sign commits\").",
                &email,
                owner,
                "If the workspace enforces signed commits, Atlassian's notice names GPG keys: sign with an OpenPGP key (SIGNING_KEY from `gpg --armor --export-secret-keys`).",
            ],
            Some(if key.starts_with("SSH") {
                DOCS_SSH_SIGNING
            } else {
                DOCS_GPG_SIGNING
            }),
        )],
    }
}
