//! What the REST API can add to a refusal: who the credential is, its
//! permission on the repository, and the branch restrictions that match the
//! target branch. Every call is bounded by the client's timeout; a failure
//! becomes a sentence in the report, never the reason the run failed.

use crate::bitbucket::{
    ApiError, BitbucketAccount, BitbucketBranchRestriction, Client, pattern_matches,
};
use crate::terms::CredentialKind;
use crate::text::untrusted;
use serde::Serialize;

/// Restriction kinds that can stop a direct push (facts §3: `push` is
/// "Write access"; whether `restrict_merges` also refuses direct pushes is NOT
/// CONFIRMED, so it is reported as possibly involved).
const PUSH_KINDS: &[&str] = &["push", "restrict_merges", "force"];

/// Restriction kinds that can stop the merge of a pull request
/// (ON_RESTRICTED=merge): who may merge, and the merge checks a new pull
/// request from commit-back cannot meet by itself (approvals, builds: the
/// artifact commit carries `[skip ci]`). Merge checks are enforced on
/// Premium plans (facts, "Branch restrictions").
const MERGE_KINDS: &[&str] = &[
    "restrict_merges",
    "require_approvals_to_merge",
    "require_default_reviewer_approvals_to_merge",
    "require_review_group_approvals_to_merge",
    "require_passing_builds_to_merge",
];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Identity {
    /// `user`, or `app_user` for access tokens.
    pub kind: String,
    pub display_name: Option<String>,
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rule {
    pub id: Option<i64>,
    pub kind: String,
    pub pattern: String,
    /// Who may push despite the rule (display names, else nicknames/uuids).
    pub users: Vec<String>,
    pub groups: Vec<String>,
    #[serde(skip)]
    pub user_uuids: Vec<String>,
    /// What a merge check asks for (approvals, successful builds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
}

/// The API's view, as reported in `blockage.context`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ApiContext {
    pub identity: Option<Identity>,
    /// `read`, `write`, `admin`, or None when it could not be read.
    pub permission: Option<String>,
    /// Restrictions on the target branch (None: could not be read).
    pub rules: Option<Vec<Rule>>,
    /// Rules on merging pull requests into the branch (ON_RESTRICTED=merge
    /// only; None otherwise or when unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_rules: Option<Vec<Rule>>,
    /// Why something could not be read (one sentence each).
    pub notes: Vec<String>,
}

/// Asks the API. `repository` is `workspace/slug`.
pub fn gather(
    client: &Client,
    repository: &str,
    branch: &str,
    credential: CredentialKind,
) -> ApiContext {
    let mut ctx = ApiContext::default();
    match client.current_user() {
        Ok(a) => ctx.identity = Some(identity(&a)),
        Err(e) => ctx.notes.push(format!(
            "Could not read the credential's identity (GET /user): {e}."
        )),
    }
    if credential == CredentialKind::AccessToken {
        // Spec narrative: "You can't use an access token to … query repository,
        // project, or workspace permissions."
        ctx.notes.push(
            "Access tokens cannot query permissions; the token's access comes from its scopes."
                .into(),
        );
    } else {
        match client.repository_permission(repository) {
            Ok(p) => ctx.permission = p,
            Err(e) => ctx
                .notes
                .push(format!("Could not read the repository permission: {e}.")),
        }
    }
    match client.branch_restrictions(repository) {
        Ok(all) => {
            if let Some(elsewhere) = &all.stopped_at {
                ctx.notes.push(format!(
                    "The branch restrictions continue on a page at {elsewhere}, outside API_URL; it was not followed (the credential goes only to API_URL), so the list may be incomplete."
                ));
            }
            ctx.rules = Some(matching(&all.values, branch));
            ctx.merge_rules = Some(matching_kinds(&all.values, branch, MERGE_KINDS));
        }
        Err(e) => ctx.notes.push(rules_unreadable(&e)),
    }
    ctx
}

fn identity(a: &BitbucketAccount) -> Identity {
    Identity {
        kind: a.kind.clone(),
        display_name: a
            .display_name
            .clone()
            .or_else(|| a.nickname.clone())
            .map(|n| untrusted(&n)),
        uuid: a.uuid.clone(),
    }
}

fn rules_unreadable(e: &ApiError) -> String {
    match e.status {
        Some(401 | 403) => format!(
            "The branch restrictions could not be read: the API needs admin access to the repository (scope repository:admin / admin:repository:bitbucket) and answered {e}. Ask a repository admin to look under Repository settings > Branch restrictions."
        ),
        _ => format!("The branch restrictions could not be read: {e}."),
    }
}

/// The restrictions that can stop a push to `branch`.
pub fn matching(all: &[BitbucketBranchRestriction], branch: &str) -> Vec<Rule> {
    matching_kinds(all, branch, PUSH_KINDS)
}

/// The restrictions of `kinds` that apply to `branch`.
fn matching_kinds(all: &[BitbucketBranchRestriction], branch: &str, kinds: &[&str]) -> Vec<Rule> {
    all.iter()
        .filter(|r| kinds.contains(&r.kind.as_str()))
        .filter(|r| match r.branch_match_kind.as_deref() {
            Some("branching_model") => true, // the branching model is not read: may apply
            _ => pattern_matches(&r.pattern, branch),
        })
        .map(|r| Rule {
            id: r.id,
            kind: r.kind.clone(),
            pattern: if r.pattern.is_empty() {
                r.branch_type
                    .clone()
                    .map(|t| format!("branch type {t}"))
                    .unwrap_or_default()
            } else {
                untrusted(&r.pattern)
            },
            users: r
                .users
                .iter()
                .map(|u| {
                    untrusted(
                        &u.display_name
                            .clone()
                            .or_else(|| u.nickname.clone())
                            .or_else(|| u.uuid.clone())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            groups: r
                .groups
                .iter()
                .filter_map(|g| g.name.clone().or_else(|| g.slug.clone()))
                .map(|g| untrusted(&g))
                .collect(),
            user_uuids: r.users.iter().filter_map(|u| u.uuid.clone()).collect(),
            value: r.value,
        })
        .collect()
}

/// The dry run's verdict on merging the fallback pull request
/// (ON_RESTRICTED=merge): Ok(what allows it) or Err(why it would be refused),
/// None when the rules could not be read.
pub fn predict_merge(
    ctx: &ApiContext,
    credential: CredentialKind,
) -> Option<Result<String, String>> {
    let rules = ctx.merge_rules.as_ref()?;
    let token = matches!(
        credential,
        CredentialKind::AccessToken | CredentialKind::Pipeline
    );
    let uuid = ctx.identity.as_ref().and_then(|i| i.uuid.clone());
    let mut uncertain = Vec::new();
    for r in rules {
        let wanted = r.value.unwrap_or(1);
        match r.kind.as_str() {
            "restrict_merges" => {
                let listed = uuid.as_ref().is_some_and(|u| r.user_uuids.contains(u));
                if !listed && !token && !r.groups.is_empty() {
                    uncertain.push(format!(
                        "rule #{} lets groups {} merge, whose membership could not be checked",
                        r.id.unwrap_or_default(),
                        r.groups.join(", ")
                    ));
                } else if token || !listed {
                    return Some(Err(format!(
                        "rule #{} (restrict_merges on '{}') lets only {} merge, and {}",
                        r.id.unwrap_or_default(),
                        r.pattern,
                        allowed_list(r),
                        if token {
                            "an access token cannot be named in it"
                        } else {
                            "this account is not among them"
                        }
                    )));
                }
            }
            // Merge checks are enforced on Premium plans (facts): said so.
            "require_passing_builds_to_merge" if wanted > 0 => {
                return Some(Err(format!(
                    "rule #{} asks for {wanted} successful build(s) before a merge, and the artifact commit carries [skip ci] (if the workspace enforces merge checks)",
                    r.id.unwrap_or_default()
                )));
            }
            kind if kind.contains("approvals") && wanted > 0 => {
                return Some(Err(format!(
                    "rule #{} ({kind}) asks for {wanted} approval(s), and a new pull request has none (if the workspace enforces merge checks)",
                    r.id.unwrap_or_default()
                )));
            }
            _ => {}
        }
    }
    Some(Ok(if rules.is_empty() {
        "no rule restricts merging into the branch".into()
    } else if uncertain.is_empty() {
        "the merge rules allow it".into()
    } else {
        format!("it may be allowed: {}", uncertain.join("; "))
    }))
}

fn allowed_list(r: &Rule) -> String {
    let who = r.allowed();
    if who.is_empty() {
        "nobody".into()
    } else {
        who.join(", ")
    }
}

impl Rule {
    /// Who the rule lets through: its users, then `group <name>` for each group.
    pub fn allowed(&self) -> Vec<String> {
        self.users
            .iter()
            .cloned()
            .chain(self.groups.iter().map(|g| format!("group {g}")))
            .collect()
    }
}

/// The dry run's verdict on the restrictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prediction {
    Allowed,
    /// A push rule matches and this identity cannot be among its users.
    Refused(Rule),
    /// A rule matches; the identity might be allowed through a group.
    Uncertain(Rule),
    /// The rules could not be read.
    Unknown,
}

pub fn predict(ctx: &ApiContext, credential: CredentialKind) -> Prediction {
    let Some(rules) = &ctx.rules else {
        return Prediction::Unknown;
    };
    let Some(rule) = rules.iter().find(|r| r.kind == "push") else {
        return Prediction::Allowed;
    };
    // Access tokens (and the pipeline) can never be a restriction's allowed user.
    if matches!(
        credential,
        CredentialKind::AccessToken | CredentialKind::Pipeline
    ) {
        return Prediction::Refused(rule.clone());
    }
    let uuid = ctx.identity.as_ref().and_then(|i| i.uuid.clone());
    match uuid {
        Some(u) if rule.user_uuids.contains(&u) => Prediction::Allowed,
        _ if !rule.groups.is_empty() => Prediction::Uncertain(rule.clone()),
        Some(_) => Prediction::Refused(rule.clone()),
        None => Prediction::Uncertain(rule.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restriction(
        kind: &str,
        pattern: &str,
        users: &[(&str, &str)],
        groups: &[&str],
    ) -> BitbucketBranchRestriction {
        BitbucketBranchRestriction {
            id: Some(1),
            kind: kind.into(),
            branch_match_kind: Some("glob".into()),
            branch_type: None,
            value: None,
            pattern: pattern.into(),
            users: users
                .iter()
                .map(|(name, uuid)| BitbucketAccount {
                    kind: "user".into(),
                    display_name: Some(name.to_string()),
                    uuid: Some(uuid.to_string()),
                    account_id: None,
                    nickname: None,
                })
                .collect(),
            groups: groups
                .iter()
                .map(|g| crate::bitbucket::BitbucketGroup {
                    name: Some(g.to_string()),
                    slug: None,
                })
                .collect(),
        }
    }

    fn ctx(uuid: Option<&str>, rules: Vec<Rule>) -> ApiContext {
        ApiContext {
            identity: uuid.map(|u| Identity {
                kind: "user".into(),
                display_name: None,
                uuid: Some(u.into()),
            }),
            permission: None,
            rules: Some(rules),
            merge_rules: None,
            notes: vec![],
        }
    }

    #[test]
    fn only_push_like_rules_on_the_branch_match() {
        let all = vec![
            restriction("push", "main", &[("Bot", "{b}")], &[]),
            restriction("push", "release/*", &[], &[]),
            restriction("require_approvals_to_merge", "main", &[], &[]),
            restriction("restrict_merges", "*", &[], &["devs"]),
        ];
        let m = matching(&all, "main");
        assert_eq!(
            m.iter()
                .map(|r| (r.kind.as_str(), r.pattern.as_str()))
                .collect::<Vec<_>>(),
            [("push", "main"), ("restrict_merges", "*")]
        );
        assert_eq!(m[0].users, ["Bot"]);
    }

    #[test]
    fn predictions() {
        use CredentialKind::*;
        let rules = matching(
            &[restriction("push", "main", &[("Bot", "{b}")], &[])],
            "main",
        );
        assert_eq!(
            predict(&ctx(Some("{b}"), rules.clone()), ApiToken),
            Prediction::Allowed
        );
        assert!(matches!(
            predict(&ctx(Some("{x}"), rules.clone()), ApiToken),
            Prediction::Refused(_)
        ));
        assert!(matches!(
            predict(&ctx(Some("{b}"), rules.clone()), AccessToken),
            Prediction::Refused(_)
        ));
        let with_group = matching(
            &[restriction("push", "main", &[], &["Release managers"])],
            "main",
        );
        assert!(matches!(
            predict(&ctx(Some("{x}"), with_group), ApiToken),
            Prediction::Uncertain(_)
        ));
        assert_eq!(predict(&ctx(None, vec![]), ApiToken), Prediction::Allowed);
        assert_eq!(
            predict(&ApiContext::default(), ApiToken),
            Prediction::Unknown
        );
    }
}
