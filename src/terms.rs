//! The run's vocabulary: the closed sets of values several layers name
//! (how git talks to the remote, what to do when a restriction refuses,
//! which kind of credential pushes) and the configuration's error. Values
//! only, no I/O; config parses them, git, explain and report read them.
//! Here so that those layers need not reach into each other for a name.

/// One problem with the configuration, as reported in `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

impl ConfigError {
    /// One line always: values quoted in the message may hold line breaks or
    /// control characters, which are shown escaped.
    pub fn new(variable: &str, message: impl Into<String>) -> Self {
        let message: String = message
            .into()
            .chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect();
        ConfigError {
            variable: variable.to_owned(),
            message,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Ssh,
}

/// What to do when a branch restriction refuses the push (ON_RESTRICTED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRestricted {
    Fail,
    PullRequest,
    /// Open the pull request, then merge it through the API.
    Merge,
}

impl OnRestricted {
    /// As written in ON_RESTRICTED.
    pub fn name(self) -> &'static str {
        match self {
            OnRestricted::Fail => "fail",
            OnRestricted::PullRequest => "pull-request",
            OnRestricted::Merge => "merge",
        }
    }
}

/// The stable report codes for `credential.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    AccessToken,
    ApiToken,
    AppPassword,
    SshKey,
    Pipeline,
}

impl CredentialKind {
    pub fn describe(self) -> &'static str {
        match self {
            CredentialKind::AccessToken => "an access token (BITBUCKET_ACCESS_TOKEN)",
            CredentialKind::ApiToken => {
                "an API token (ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN)"
            }
            CredentialKind::AppPassword => {
                "an app password (BITBUCKET_USERNAME + BITBUCKET_APP_PASSWORD)"
            }
            CredentialKind::SshKey => "an SSH key",
            CredentialKind::Pipeline => "the pipeline's own credential (Pipelines auth proxy)",
        }
    }
}
