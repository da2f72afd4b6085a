//! ON_RESTRICTED=pull-request: the request body for
//! `POST /2.0/repositories/{workspace}/{repo_slug}/pullrequests` and the
//! default source branch. Pure; the flow lives in `run`.

use crate::report::Blockage;
use serde_json::json;

/// `commit-back/<branch>-<build number>`, or the commit's short sha outside Pipelines.
pub fn default_source_branch(branch: &str, build_number: Option<&str>, sha: &str) -> String {
    match build_number {
        Some(n) => format!("commit-back/{branch}-{n}"),
        None => format!("commit-back/{branch}-{}", &sha[..sha.len().min(12)]),
    }
}

/// The `pullrequest` body: title from the commit message's subject, the
/// explanation as description, destination set explicitly (the default would
/// be the repository's main branch), and the source branch closed on merge.
pub fn body(
    message: &str,
    source: &str,
    destination: &str,
    blockage: &Blockage,
) -> serde_json::Value {
    let title: String = message
        .lines()
        .next()
        .unwrap_or("Update build artifacts")
        .chars()
        .take(255)
        .collect();
    let mut description = format!(
        "commit-back could not push to `{destination}` directly:\n\n> {}\n\n{}\n",
        blockage.summary, blockage.explanation
    );
    if !blockage.remote_messages.is_empty() {
        description.push_str("\nBitbucket said:\n\n");
        for line in &blockage.remote_messages {
            description.push_str(&format!("    remote: {line}\n"));
        }
    }
    if !blockage.remedies.is_empty() {
        description.push_str("\nTo push directly next time:\n\n");
        for r in &blockage.remedies {
            description.push_str(&format!("- **{}**: {}\n", r.title, r.steps.join(" ")));
        }
    }
    json!({
        "type": "pullrequest",
        "title": title,
        "description": description,
        "source": {"branch": {"name": source}},
        "destination": {"branch": {"name": destination}},
        "close_source_branch": true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::BlockageKind;

    #[test]
    fn source_branch_defaults() {
        assert_eq!(
            default_source_branch("main", Some("42"), "0123456789abcdef"),
            "commit-back/main-42"
        );
        assert_eq!(
            default_source_branch("main", None, "0123456789abcdef"),
            "commit-back/main-0123456789ab"
        );
    }

    #[test]
    fn body_has_title_destination_and_explanation() {
        let b = Blockage {
            kind: BlockageKind::BranchRestriction,
            summary: "A branch restriction on 'main' refused the push.".into(),
            explanation: "Because.".into(),
            remote_messages: vec!["Permission denied to update branch main.".into()],
            ref_status: None,
            http_status: None,
            remedies: vec![],
            files: vec![],
            context: None,
        };
        let v = body(
            "Bump version [skip ci]\n\nCommit-Back-Artifact: 1",
            "commit-back/main-1",
            "main",
            &b,
        );
        assert_eq!(v["title"], "Bump version [skip ci]");
        assert_eq!(v["destination"]["branch"]["name"], "main");
        assert_eq!(v["source"]["branch"]["name"], "commit-back/main-1");
        assert_eq!(v["close_source_branch"], true);
        assert!(
            v["description"]
                .as_str()
                .unwrap()
                .contains("remote: Permission denied to update branch main.")
        );
    }
}
