//! Code Insights: in Pipelines, a report on the commit that started the build
//! (`PUT …/commit/{commit}/reports/commit-back`), sent through the Pipelines
//! auth proxy to plain `http://api.bitbucket.org` (facts §3), so a refusal
//! shows on the commit and pull-request pages. The body is built here, pure.

use crate::report::{Report, Status};
use serde_json::json;

pub const REPORT_ID: &str = "commit-back";

/// `report`: PASSED with the pushed commit, FAILED with the explanation and remedies.
pub fn body(report: &Report) -> serde_json::Value {
    let passed = matches!(
        report.status,
        Status::Pushed | Status::NothingToCommit | Status::PullRequest | Status::DryRun
    );
    let mut details = report.summary.clone();
    if let Some(b) = &report.blockage {
        details.push_str(&format!(" {}", b.explanation));
        for (i, r) in b.remedies.iter().enumerate() {
            details.push_str(&format!(
                " Fix {}: {} — {}",
                i + 1,
                r.title,
                r.steps.join(" ")
            ));
        }
    }
    // Bitbucket truncates long details; keep them readable.
    let details: String = details.chars().take(2000).collect();
    let mut data = vec![
        json!({"title": "Status", "type": "TEXT", "value": serde_json::to_value(report.status).unwrap_or_default()}),
    ];
    if let Some(c) = &report.commit {
        data.push(json!({"title": "Artifact commit", "type": "TEXT", "value": c.sha}));
        data.push(json!({"title": "Files", "type": "NUMBER", "value": c.files.len()}));
    }
    if let Some(b) = &report.blockage {
        data.push(json!({"title": "Refusal", "type": "TEXT", "value": serde_json::to_value(b.kind).unwrap_or_default()}));
    }
    if let Some(pr) = &report.pull_request {
        data.push(json!({"title": "Pull request", "type": "LINK", "value": {"text": format!("#{}", pr.id), "href": pr.url}}));
    }
    json!({
        "type": "report",
        "title": "commit-back",
        "details": details,
        "external_id": REPORT_ID,
        "reporter": "commit-back",
        "report_type": "BUG",
        "result": if passed { "PASSED" } else { "FAILED" },
        "data": data
    })
}

/// The API base for requests through the auth proxy: plain http, as the
/// proxy expects (facts §3, the Bitbucket blog's curl example).
pub fn proxied_api_base(api_url: &str) -> String {
    match api_url.strip_prefix("https://api.bitbucket.org") {
        Some(rest) => format!("http://api.bitbucket.org{rest}"),
        None => api_url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_and_failed() {
        let ok = Report::new(Status::Pushed, "Pushed abc to main.");
        assert_eq!(body(&ok)["result"], "PASSED");
        let bad = Report::new(Status::Blocked, "Refused.");
        assert_eq!(body(&bad)["result"], "FAILED");
        assert_eq!(body(&bad)["data"][0]["value"], "blocked");
    }

    #[test]
    fn proxy_base_is_plain_http() {
        assert_eq!(
            proxied_api_base("https://api.bitbucket.org/2.0"),
            "http://api.bitbucket.org/2.0"
        );
        assert_eq!(
            proxied_api_base("http://127.0.0.1:9/2.0"),
            "http://127.0.0.1:9/2.0"
        );
    }
}
