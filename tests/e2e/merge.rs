//! ON_RESTRICTED=merge: the push is refused by a branch restriction, the
//! pull request is opened and merged through the API stand-in, which
//! applies the merge to the real repository behind `git http-backend` (so
//! `main` is read afterwards with git) and follows Bitbucket's published
//! shapes (checked against the spec). Its refusal texts are its own:
//! Bitbucket's are not confirmed, and commit-back reads them loosely.

use crate::Fixture;
use crate::api::{RELEASE_UUID, restricted};
use testkit::api::ApiServer;
use testkit::{PipeRun, git};

const SOURCE: &str = "commit-back/main-41";

fn merge_fixture() -> (Fixture, ApiServer) {
    let (f, api) = restricted();
    api.repository("ws/repo", &f.bare);
    f.write("dist/ids.json", "[41]\n");
    (f, api)
}

fn run_merge(f: &Fixture, api: &ApiServer, extra: &[(&str, &str)]) -> PipeRun {
    let url = api.base_url();
    let mut env = vec![
        ("API_URL", url.as_str()),
        ("ON_RESTRICTED", "merge"),
        ("BITBUCKET_BUILD_NUMBER", "41"),
    ];
    env.extend_from_slice(extra);
    f.run(&env)
}

fn branch_exists(f: &Fixture, name: &str) -> bool {
    testkit::git_command(&f.bare)
        .args(["rev-parse", "--verify", "-q", &format!("refs/heads/{name}")])
        .output()
        .unwrap()
        .status
        .success()
}

/// The merge requests commit-back sent, their bodies.
fn merge_bodies(api: &ApiServer) -> Vec<serde_json::Value> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/merge"))
        .filter_map(|r| r.body)
        .collect()
}

#[test]
fn the_merge_lands_the_artifact_commit_on_main() {
    let (f, api) = merge_fixture();
    let before = f.upstream_tip();
    let run = run_merge(&f, &api, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pull_request");
    let pr = &run.report["pull_request"];
    assert_eq!(pr["merged"], true, "{}", run.stderr);
    assert_eq!(pr["merge_strategy"], "fast_forward");
    assert!(pr["merge_refusal"].is_null());
    // fast_forward: the artifact commit itself is main's tip now.
    let sha = run.report["commit"]["sha"].as_str().unwrap();
    assert_eq!(pr["merge_commit"], sha);
    assert_eq!(f.upstream_tip(), sha);
    assert_eq!(git(&f.bare, &["rev-parse", "main~1"]), before);
    assert!(!branch_exists(&f, SOURCE), "the source branch was closed");
    assert_eq!(api.pull_requests()[0]["state"], "MERGED");
    let bodies = merge_bodies(&api);
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["merge_strategy"], "fast_forward");
    assert_eq!(bodies[0]["close_source_branch"], true);
    assert!(
        run.stderr.contains("Merged pull request #1"),
        "{}",
        run.stderr
    );
    // The branch restriction that made it necessary stays in the report.
    assert_eq!(run.blockage_kind(), "branch_restriction");
    api.check_against_spec();
    run.assert_secret_absent(crate::TOKEN, &f.clone);
    git(&f.bare, &["fsck", "--strict"]);
}

#[test]
fn a_destination_that_moved_is_rebased_onto_and_merged() {
    let (f, api) = merge_fixture();
    api.move_destination_before_merges(1);
    let run = run_merge(&f, &api, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let pr = &run.report["pull_request"];
    assert_eq!(pr["merged"], true, "{}", run.stderr);
    assert_eq!(merge_bodies(&api).len(), 2, "merged on the second try");
    let tip = f.upstream_tip();
    assert_eq!(pr["merge_commit"], tip.as_str());
    assert_eq!(
        git(&f.bare, &["log", "-1", "--format=%s", "main~1"]),
        "Someone else's change"
    );
    // The rebased copy is what landed, and what the report names.
    assert_eq!(run.report["commit"]["sha"], tip.as_str());
    assert_eq!(git(&f.bare, &["show", "main:dist/ids.json"]), "[41]");
    api.check_against_spec();
}

#[test]
fn merge_strategies_other_than_fast_forward() {
    for strategy in ["merge_commit", "squash"] {
        let (f, api) = merge_fixture();
        let before = f.upstream_tip();
        let run = run_merge(&f, &api, &[("MERGE_STRATEGY", strategy)]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let pr = &run.report["pull_request"];
        assert_eq!(pr["merged"], true, "{strategy}: {}", run.stderr);
        assert_eq!(pr["merge_commit"], f.upstream_tip().as_str());
        let parents = git(&f.bare, &["rev-list", "--parents", "-n", "1", "main"]);
        let expected = if strategy == "squash" { 2 } else { 3 };
        assert_eq!(
            parents.split(' ').count(),
            expected,
            "{strategy}: {parents}"
        );
        assert_eq!(git(&f.bare, &["rev-parse", "main~1"]), before);
        assert_eq!(git(&f.bare, &["show", "main:dist/ids.json"]), "[41]");
        assert_eq!(merge_bodies(&api)[0]["merge_strategy"], strategy);
        // The commit the merge made keeps [skip ci] and the trailer:
        // no pipeline loop on main, and LOOP_GUARD recognises it.
        let message = git(&f.bare, &["log", "-1", "--format=%B", "main"]);
        assert!(message.contains("[skip ci]"), "{message}");
        assert!(message.contains("Commit-Back-Artifact:"), "{message}");
    }
}

#[test]
fn a_moved_destination_is_read_from_git_not_from_the_words() {
    let (f, api) = merge_fixture();
    api.move_destination_before_merges(1)
        .neutral_merge_refusals();
    let run = run_merge(&f, &api, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["pull_request"]["merged"], true, "{}", run.stderr);
    assert_eq!(merge_bodies(&api).len(), 2);
    assert_eq!(
        git(&f.bare, &["log", "-1", "--format=%s", "main~1"]),
        "Someone else's change"
    );
}

#[test]
fn a_destination_that_keeps_moving_ends_with_the_pull_request_open() {
    let (f, api) = merge_fixture();
    api.move_destination_before_merges(10);
    let run = run_merge(&f, &api, &[("RETRIES", "1")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let pr = &run.report["pull_request"];
    assert_eq!(pr["merged"], false);
    assert_eq!(
        pr["merge_refusal"]["kind"], "destination_moved",
        "{}",
        run.stderr
    );
    assert_eq!(merge_bodies(&api).len(), 2, "RETRIES=1: two attempts");
    assert!(branch_exists(&f, SOURCE));
    assert_eq!(api.pull_requests()[0]["state"], "OPEN");
}

#[test]
fn a_merge_that_timed_out_is_tried_again_or_found_merged() {
    // 555 before merging: tried again, then merged.
    let (f, api) = merge_fixture();
    api.time_out_merges(1, false);
    let run = run_merge(&f, &api, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["pull_request"]["merged"], true, "{}", run.stderr);
    assert_eq!(merge_bodies(&api).len(), 2);
    // 555 after merging: the pull request says MERGED; not asked again.
    let (f, api) = merge_fixture();
    api.time_out_merges(1, true);
    let run = run_merge(&f, &api, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["pull_request"]["merged"], true, "{}", run.stderr);
    assert_eq!(merge_bodies(&api).len(), 1);
    assert_eq!(
        run.report["pull_request"]["merge_commit"],
        f.upstream_tip().as_str()
    );
    api.check_against_spec();
}

#[test]
fn an_asynchronous_merge_is_polled_until_it_is_done() {
    let (f, api) = merge_fixture();
    api.async_merges();
    let run = run_merge(&f, &api, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.report["pull_request"]["merged"], true, "{}", run.stderr);
    let polls = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/merge/task-status/"))
        .count();
    assert_eq!(polls, 2, "one PENDING, then SUCCESS");
    assert_eq!(
        run.report["pull_request"]["merge_commit"],
        f.upstream_tip().as_str()
    );
}

/// The pull request stays open, main is untouched, the refusal is explained
/// on its own, and the run ends `pull_request` (exit 0).
fn assert_refused(f: &Fixture, api: &ApiServer, run: &PipeRun, kind: &str, before: &str) {
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.status(), "pull_request");
    let pr = &run.report["pull_request"];
    assert_eq!(pr["merged"], false);
    assert!(pr["merge_commit"].is_null());
    let refusal = &pr["merge_refusal"];
    assert_eq!(refusal["kind"], kind, "{}", run.stderr);
    assert!(!refusal["remedies"].as_array().unwrap().is_empty());
    assert!(
        refusal["explanation"]
            .as_str()
            .unwrap()
            .contains(refusal["message"].as_str().unwrap()),
        "Bitbucket's words are quoted"
    );
    assert_eq!(f.upstream_tip(), before, "main is untouched");
    assert!(branch_exists(f, SOURCE), "the pull request's branch stays");
    assert_eq!(api.pull_requests()[0]["state"], "OPEN");
    assert!(
        run.report["summary"]
            .as_str()
            .unwrap()
            .contains("not merged"),
        "{}",
        run.report["summary"]
    );
    api.check_against_spec();
}

#[test]
fn a_merge_restriction_leaves_the_pull_request_open_and_says_who_may_merge() {
    let (f, api) = merge_fixture();
    api.rule(
        8,
        "restrict_merges",
        "main",
        &[(RELEASE_UUID, "Release Bot")],
        None,
    );
    let before = f.upstream_tip();
    let run = run_merge(&f, &api, &[]);
    assert_refused(&f, &api, &run, "merge_restricted", &before);
    let refusal = run.report["pull_request"]["merge_refusal"].to_string();
    assert!(refusal.contains("Merge via pull request"), "{refusal}");
    assert!(refusal.contains("Access tokens"), "{refusal}");
    // Refused for good: asked once, not retried.
    assert_eq!(merge_bodies(&api).len(), 1);
}

#[test]
fn unmet_merge_checks_leave_the_pull_request_open() {
    for (kind, value) in [
        ("require_approvals_to_merge", 1),
        ("require_passing_builds_to_merge", 1),
    ] {
        let (f, api) = merge_fixture();
        api.rule(9, kind, "main", &[], Some(value));
        let before = f.upstream_tip();
        let run = run_merge(&f, &api, &[]);
        assert_refused(&f, &api, &run, "merge_checks", &before);
        let refusal = run.report["pull_request"]["merge_refusal"].to_string();
        assert!(refusal.contains("merge when builds pass"), "{refusal}");
    }
}

#[test]
fn a_strategy_the_repository_does_not_allow_is_explained() {
    let (f, api) = merge_fixture();
    api.allow_strategies(&["merge_commit"]);
    let before = f.upstream_tip();
    let run = run_merge(&f, &api, &[]);
    assert_refused(&f, &api, &run, "merge_strategy", &before);
}

#[test]
fn dry_run_predicts_the_merge() {
    // Allowed: nothing restricts merging.
    let (f, api) = merge_fixture();
    let before = f.upstream_tip();
    let run = run_merge(&f, &api, &[("DRY_RUN", "true")]);
    let explanation = run.report["blockage"]["explanation"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        explanation.contains("a pull request would be opened and merged into main (fast_forward)"),
        "{explanation}\n{}",
        run.stderr
    );
    assert!(merge_bodies(&api).is_empty(), "a dry run merges nothing");
    assert!(api.pull_requests().is_empty());
    assert_eq!(f.upstream_tip(), before);

    // Refused: only Release Bot may merge, and an access token never can.
    let (f, api) = merge_fixture();
    api.rule(
        8,
        "restrict_merges",
        "main",
        &[(RELEASE_UUID, "Release Bot")],
        None,
    );
    let run = run_merge(&f, &api, &[("DRY_RUN", "true")]);
    let explanation = run.report["blockage"]["explanation"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        explanation.contains("its merge into main would be refused")
            && explanation.contains("Release Bot"),
        "{explanation}"
    );
    api.check_against_spec();
}

#[test]
fn merge_strategy_is_validated() {
    let f = Fixture::new(Some(50));
    let run = f.run(&[("MERGE_STRATEGY", "octopus")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.report["errors"][0]["variable"], "MERGE_STRATEGY");
}

/// The README's example of a refused merge is a real run, and still true.
#[test]
fn readme_merge_example_is_real() {
    let shown = testkit::showcase::merge_refused(std::path::Path::new(crate::BIN));
    assert_eq!(shown.run.code, 0, "{}", shown.run.stderr);
    assert_eq!(
        shown.run.report["pull_request"]["merge_refusal"]["kind"],
        shown.kind
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/refusals.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "<summary><code>{}</code>: {} (exit 0)</summary>",
            shown.kind, shown.title
        )),
        "README lacks the merge example (cargo run -p testkit --bin refusals -- --merge)"
    );
}
