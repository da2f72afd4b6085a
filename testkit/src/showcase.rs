//! One real refused run per blockage kind, against the local servers: the
//! source of the README's "When Bitbucket refuses" section
//! (`cargo run -p testkit --bin refusals`), and checked by the e2e tests so
//! those examples stay true.

use crate::api::ApiServer;
use crate::sshd::{Sshd, keygen};
use crate::{Answer, GitHttpServer, PipeRun, World, git, run_pipe, texts};
use std::path::Path;

pub struct Shown {
    pub kind: &'static str,
    pub title: &'static str,
    pub run: PipeRun,
}

const TOKEN: &str = "showcase-access-token-1";

struct Scene {
    world: World,
    server: GitHttpServer,
    bare: std::path::PathBuf,
    clone: std::path::PathBuf,
    url: String,
}

fn scene() -> Scene {
    let world = World::new();
    let bare = world.upstream("acme/site", 3);
    let server = GitHttpServer::start(&world.root());
    server.account("x-token-auth", TOKEN, "{access-token}");
    let url = server.url("acme/site.git");
    let clone = world.pipelines_clone(&bare, "build", "main", Some(50), &url);
    std::fs::create_dir_all(clone.join("generated")).unwrap();
    std::fs::write(clone.join("generated/ids.json"), "{\"next_id\": 1001}\n").unwrap();
    Scene {
        world,
        server,
        bare,
        clone,
        url,
    }
}

fn run(bin: &Path, s: &Scene, extra: &[(&str, &str)]) -> PipeRun {
    let mut env = vec![
        ("BITBUCKET_BRANCH", "main"),
        ("BITBUCKET_REPO_FULL_NAME", "acme/site"),
        ("REMOTE_URL", s.url.as_str()),
        ("BITBUCKET_ACCESS_TOKEN", TOKEN),
        ("NO_COLOR", "1"),
    ];
    for (k, v) in extra {
        env.retain(|(kk, _)| kk != k);
        if !v.is_empty() {
            env.push((k, v));
        }
    }
    run_pipe(bin, &s.clone, &env)
}

fn http_refusal(
    bin: &Path,
    status: u16,
    body: &str,
    extra: &[(&str, &str)],
    password: &str,
) -> PipeRun {
    let s = scene();
    s.server.refuse(password, status, body);
    run(bin, &s, extra)
}

/// A build that adds a file tracked by Git LFS, whose batch request is
/// answered with `status` and `body`.
fn lfs_refusal(bin: &Path, status: u16, body: &str) -> PipeRun {
    let s = scene();
    std::fs::write(
        s.clone.join(".gitattributes"),
        "*.bin filter=lfs diff=lfs merge=lfs -text\n",
    )
    .unwrap();
    std::fs::write(s.clone.join("generated/bundle.bin"), [0u8, 1, 2, 3]).unwrap();
    s.server.answer_next_for(
        "/objects/batch",
        vec![Answer {
            status,
            body: body.to_owned(),
        }],
    );
    run(bin, &s, &[])
}

fn hook(bin: &Path, text: &str) -> PipeRun {
    let s = scene();
    let echo: String = text.lines().map(|l| format!("echo '{l}' >&2\n")).collect();
    s.world.hook(
        &s.bare,
        "pre-receive",
        &format!("#!/bin/sh\n{echo}exit 1\n"),
    );
    run(bin, &s, &[])
}

fn upstream_change(s: &Scene, rel: &str, content: &str) {
    let other = s
        .world
        .pipelines_clone(&s.bare, "colleague", "main", None, "unused");
    std::fs::create_dir_all(other.join(rel).parent().unwrap()).unwrap();
    std::fs::write(other.join(rel), content).unwrap();
    git(&other, &["add", "-A"]);
    git(&other, &["commit", "-qm", "colleague's change"]);
    git(&other, &["push", "-q", s.bare.to_str().unwrap(), "main"]);
}

fn ssh(bin: &Path, text: Option<&str>, known: bool) -> PipeRun {
    use base64::Engine as _;
    let s = scene();
    let dir = s.world.path().join("ssh");
    std::fs::create_dir_all(&dir).unwrap();
    let key = keygen(&dir, "deploy_key");
    let line = match text {
        Some(t) => crate::sshd::refusing_key_line(&dir, &key.public_line, "refuse", t),
        None => key.public_line.clone(),
    };
    let sshd = Sshd::start(&dir.join("sshd"), &[line]);
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read_to_string(&key.private).unwrap());
    let url = sshd.url(&s.bare);
    let known_hosts = if known {
        sshd.known_hosts_line.clone()
    } else {
        String::new()
    };
    run(
        bin,
        &s,
        &[
            ("BITBUCKET_ACCESS_TOKEN", ""),
            ("SSH_KEY", &b64),
            ("REMOTE_URL", &url),
            ("KNOWN_HOSTS", &known_hosts),
        ],
    )
}

/// Every kind, in the README's order.
pub fn all(bin: &Path) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut show = |kind, title, run| out.push(Shown { kind, title, run });

    let s = scene();
    s.world.restrict_branch(&s.bare, "main", &["release-bot"]);
    let api = ApiServer::start();
    api.access_token(TOKEN, "site-ci-token", true);
    api.restrict(
        12,
        "main",
        &[("{77777777-0000-4000-8000-000000000777}", "Release Bot")],
        &["Maintainers"],
    );
    let api_url = api.base_url();
    show(
        "branch_restriction",
        "a repository access token pushes to a restricted main",
        run(bin, &s, &[("API_URL", &api_url)]),
    );

    show(
        "two_step_verification",
        "a bot account without 2SV, workspace enforces it",
        http_refusal(bin, 403, texts::TWO_STEP, &[], TOKEN),
    );
    show(
        "ip_allowlist",
        "the runner's address is not allowlisted",
        http_refusal(bin, 403, texts::IP_ALLOWLIST, &[], TOKEN),
    );
    show(
        "invalid_credentials",
        "a revoked access token",
        http_refusal(bin, 401, texts::INVALID_CREDENTIALS, &[], TOKEN),
    );
    show(
        "app_password_removed",
        "an app password after 2026-07-28",
        http_refusal(
            bin,
            410,
            texts::APP_PASSWORD_GONE,
            &[
                ("BITBUCKET_ACCESS_TOKEN", ""),
                ("BITBUCKET_USERNAME", "ci-bot"),
                ("BITBUCKET_APP_PASSWORD", "app-pw-showcase"),
            ],
            "app-pw-showcase",
        ),
    );
    show(
        "insufficient_scope",
        "an access token with read scope only",
        http_refusal(bin, 403, texts::SCOPES, &[], TOKEN),
    );
    show(
        "read_only_key",
        "a repository access key (SSH) tries to push",
        ssh(bin, Some(texts::READ_ONLY_KEY), true),
    );
    show(
        "repository_not_found",
        "a typo in REPOSITORY, or no access",
        http_refusal(bin, 403, texts::NOT_FOUND, &[], TOKEN),
    );
    show(
        "repository_size_limit",
        "the repository is over 4 GB",
        hook(bin, texts::SIZE_LIMIT),
    );

    // The LFS batch API answers before any git push; these statuses are
    // the Git LFS API's, not Bitbucket texts.
    show(
        "lfs_refused",
        "the Git LFS server refuses the upload (HTTP 403)",
        lfs_refusal(bin, 403, r#"{"message":"Forbidden"}"#),
    );
    show(
        "lfs_storage_quota",
        "the Git LFS server is out of storage (HTTP 507)",
        lfs_refusal(bin, 507, r#"{"message":"Insufficient storage"}"#),
    );

    let s = scene();
    upstream_change(&s, "src/app.js", "console.log(1)\n");
    show(
        "non_fast_forward",
        "main moved and RETRIES=0 allows no second attempt",
        run(bin, &s, &[("RETRIES", "0")]),
    );

    let s = scene();
    upstream_change(&s, "generated/ids.json", "{\"next_id\": 999}\n");
    show(
        "rebase_conflict",
        "a colleague changed the same generated file",
        run(bin, &s, &[]),
    );

    let s = scene();
    git(&s.bare, &["tag", "v1.4.0", "main~1"]);
    show(
        "tag_exists",
        "TAG names a release that exists at another commit",
        run(bin, &s, &[("TAG", "v1.4.0")]),
    );

    let s = scene();
    let unavailable = || Answer {
        status: 503,
        body: "Service Unavailable".into(),
    };
    s.server.answer_next(vec![unavailable(), unavailable()]);
    show(
        "network",
        "the server answers 503 twice, RETRIES=1",
        run(bin, &s, &[("RETRIES", "1")]),
    );

    show(
        "signature_required",
        "a hook standing in for a workspace that enforces signed commits (Bitbucket's own text is not confirmed)",
        hook(bin, "Commits must be signed with a verified key."),
    );
    show(
        "hook_rejected",
        "a server hook commit-back does not know",
        hook(
            bin,
            "Commit messages must reference a JIRA issue (e.g. PROJ-123).",
        ),
    );
    show(
        "unknown",
        "an SSH server whose host key is not known",
        ssh(bin, None, false),
    );
    out
}

/// ON_RESTRICTED=merge with an access token: the push is refused by a
/// branch restriction, the pull request opened, and its merge refused by a
/// merge check (one successful build required; the artifact commit starts
/// none). The README's example of a merge refusal.
pub fn merge_refused(bin: &Path) -> Shown {
    let s = scene();
    s.world.restrict_branch(&s.bare, "main", &["release-bot"]);
    let api = ApiServer::start();
    api.access_token(TOKEN, "pipeline-token", true);
    api.restrict(
        7,
        "main",
        &[("{0f0f0f0f-0000-4000-8000-00000000r31e}", "Release Bot")],
        &[],
    );
    api.rule(9, "require_passing_builds_to_merge", "main", &[], Some(1));
    api.repository("acme/site", &s.bare);
    let url = api.base_url();
    let run = run(
        bin,
        &s,
        &[
            ("API_URL", url.as_str()),
            ("ON_RESTRICTED", "merge"),
            ("BITBUCKET_BUILD_NUMBER", "7"),
        ],
    );
    Shown {
        kind: "merge_checks",
        title: "ON_RESTRICTED=merge, the merge waits for a passing build",
        run,
    }
}

/// Markdown for the README: the log and the pull request of a merge run.
pub fn merge_markdown(s: &Shown) -> String {
    let pr = serde_json::to_string_pretty(&s.run.report["pull_request"]).unwrap();
    format!(
        "<details><summary><code>{}</code>: {} (exit {})</summary>\n\n```text\n{}```\n\n```json\n\"pull_request\": {}\n```\n\n</details>\n",
        s.kind, s.title, s.run.code, s.run.stderr, pr
    )
}

/// Markdown for the README: the log and the blockage of each run.
pub fn markdown(shown: &[Shown]) -> String {
    let mut md = String::new();
    for s in shown {
        let blockage = serde_json::to_string_pretty(&s.run.report["blockage"]).unwrap();
        md.push_str(&format!(
            "<details><summary><code>{}</code>: {} (exit {})</summary>\n\n```text\n{}```\n\n```json\n\"blockage\": {}\n```\n\n</details>\n\n",
            s.kind, s.title, s.run.code, s.run.stderr, blockage
        ));
    }
    md
}
