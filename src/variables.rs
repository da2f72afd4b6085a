//! The pipe's variables, documented once. The README table, `pipe.yml` and
//! (later) `--help` are checked against this list by tests, so they cannot
//! drift from what `config` reads.

/// One user-facing variable.
pub struct VariableDoc {
    pub name: &'static str,
    /// As written in the README's Default column ("" when none).
    pub default: &'static str,
    pub description: &'static str,
}

const fn var(name: &'static str, default: &'static str, description: &'static str) -> VariableDoc {
    VariableDoc {
        name,
        default,
        description,
    }
}

pub const VARIABLES: &[VariableDoc] = &[
    var(
        "FILES",
        ".",
        "Whitespace/newline-separated pathspecs or globs, relative to the repository root. Anything outside the repository is an error.",
    ),
    var(
        "COMMIT_MESSAGE",
        "Update build artifacts [skip ci]",
        "Message of the artifact commit.",
    ),
    var(
        "SKIP_CI",
        "true",
        "Make sure `[skip ci]` is in the message so the push does not start another pipeline.",
    ),
    var(
        "BRANCH",
        "$BITBUCKET_BRANCH",
        "Branch to push to. Outside Pipelines: the checked-out branch. Required on a detached HEAD (tag and custom pipelines, CI checkouts of a commit).",
    ),
    var(
        "REPOSITORY",
        "$BITBUCKET_REPO_FULL_NAME",
        "`workspace/repo_slug` to push to; another repository is allowed. Outside Pipelines: from the `origin` remote.",
    ),
    var(
        "REMOTE_URL",
        "",
        "Full git URL (http, https or ssh); overrides the URL derived from REPOSITORY and the credential.",
    ),
    var(
        "API_URL",
        "https://api.bitbucket.org/2.0",
        "Bitbucket REST API base (validated; used by the API features).",
    ),
    var(
        "AUTHOR_NAME",
        "bitbucket-pipelines",
        "Author and committer name.",
    ),
    var(
        "AUTHOR_EMAIL",
        "commits-noreply@bitbucket.org",
        "Author and committer e-mail.",
    ),
    var(
        "RETRIES",
        "3",
        "Retries after a lost race (fetch, rebase, push again) or a network error, with backoff and jitter. 0 to 20.",
    ),
    var(
        "INCLUDE_IGNORED",
        "false",
        "Stage matching files even when .gitignore ignores them.",
    ),
    var(
        "TAG",
        "",
        "Annotated tag on the artifact commit, pushed with it; an existing tag is never moved.",
    ),
    var(
        "DRY_RUN",
        "false",
        "Do everything up to the push, check access, change nothing, report what would happen.",
    ),
    var(
        "REPORT_FILE",
        "$BITBUCKET_PIPE_STORAGE_DIR/report.json",
        "Path for a copy of the JSON report.",
    ),
    var(
        "LOOP_GUARD",
        "true",
        "Do nothing when BITBUCKET_COMMIT is commit-back's own artifact commit.",
    ),
    var(
        "ON_RESTRICTED",
        "fail",
        "`pull-request`: when a branch restriction refuses the push, push the commit to PR_BRANCH and open a pull request to BRANCH. `merge`: the same, then merge the pull request through the API (MERGE_STRATEGY), rebasing it when BRANCH moved.",
    ),
    var(
        "PR_BRANCH",
        "commit-back/<BRANCH>-<BITBUCKET_BUILD_NUMBER>",
        "Source branch of the fallback pull request.",
    ),
    var(
        "MERGE_STRATEGY",
        "fast_forward",
        "How ON_RESTRICTED=merge merges: `fast_forward` (the artifact commit itself lands, with its signature), `merge_commit`, `squash`, `squash_fast_forward`, `rebase_fast_forward` or `rebase_merge`.",
    ),
    var(
        "CODE_INSIGHTS",
        "true",
        "In Pipelines, put a Code Insights report (PASSED, or FAILED with the explanation) on BITBUCKET_COMMIT.",
    ),
    var(
        "NETWORK_TIMEOUT",
        "60",
        "Seconds a connection may stay silent before it counts as a network failure (1 to 3600).",
    ),
    var("DEBUG", "false", "Verbose log. Never prints secrets."),
    var(
        "PROGRESS",
        "true",
        "Progress lines while a long phase runs (staging, building the pack, uploading): after 2 s, at most one every 3 s. `false` turns them off.",
    ),
    var(
        "NO_COLOR",
        "",
        "Set to anything to turn colour off in the log.",
    ),
    var(
        "BITBUCKET_ACCESS_TOKEN",
        "",
        "Repository, project or workspace access token (credential 1).",
    ),
    var(
        "ATLASSIAN_ACCOUNT_EMAIL",
        "",
        "E-mail of the (bot) account owning ATLASSIAN_API_TOKEN (credential 2).",
    ),
    var(
        "ATLASSIAN_API_TOKEN",
        "",
        "API token with scopes read:repository:bitbucket and write:repository:bitbucket (credential 2).",
    ),
    var(
        "BITBUCKET_USERNAME",
        "",
        "Git username for the API token (default x-bitbucket-api-token-auth), or the app password's owner (credential 3).",
    ),
    var(
        "BITBUCKET_APP_PASSWORD",
        "",
        "Legacy app password (credential 3); removed from Bitbucket Cloud on 2026-07-28.",
    ),
    var(
        "SSH_KEY",
        "",
        "Base64-encoded private SSH key (credential 4).",
    ),
    var(
        "AUTH",
        "",
        "`ssh` to push with the pipeline's own SSH key (credential 4).",
    ),
    var(
        "KNOWN_HOSTS",
        "",
        "Extra known_hosts lines (plain or base64) for SSH servers other than bitbucket.org.",
    ),
    var(
        "SIGN",
        "",
        "Unset: sign when SIGNING_KEY is set. `true`: sign every commit and tag commit-back writes (the artifact commit, each rebased replay, the pull-request branch's commit, TAG) with SIGNING_KEY; `ssh-key`: sign with the SSH_KEY that pushes (one key for both); `false`: never sign.",
    ),
    var(
        "SIGNING_KEY",
        "",
        "Private key to sign with, base64-encoded like SSH_KEY: an OpenSSH key (ed25519, ecdsa, rsa) signs as `git -c gpg.format=ssh commit -S` does, an ASCII-armored OpenPGP secret key (`gpg --armor --export-secret-keys`) as `git commit -S` does.",
    ),
    var(
        "SIGNING_KEY_PASSPHRASE",
        "",
        "Passphrase of SIGNING_KEY, when it has one.",
    ),
    var(
        "PIPELINES_AUTH_PROXY",
        "http://host.docker.internal:29418",
        "Pipelines auth proxy used when no credential is given (`http://localhost:29418` outside a pipe container).",
    ),
];
