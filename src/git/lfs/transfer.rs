//! The Git LFS batch API and the basic transfer, for uploads
//! (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md,
//! docs/api/basic-transfers.md): one batch request per hundred objects,
//! then for each object the server lacks a PUT of its content, streamed
//! from the local store, and the `verify` call when the server asks for it.
//!
//! Owns the wire format and which headers go where. It must never send the
//! run's credential anywhere but the push's own origin: the batch request
//! carries it only when the endpoint shares the push URL's origin, and an
//! action's href only when it shares the endpoint's origin and the server
//! gave no Authorization header of its own.

use super::{LfsObject, Pointer, Store};
use crate::git::http::{self, Answer, Exchange, ExchangeBody, HttpFailure};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// The media type of the batch API.
const LFS_JSON: &str = "application/vnd.git-lfs+json";
/// Objects per batch request (git-lfs's `lfs.transfer.batchSize` default).
const BATCH_SIZE: usize = 100;
/// Tries of one request that failed on the network or with a 5xx/429.
const TRIES: u32 = 3;

/// How the batch endpoint is reached.
pub struct Access {
    /// `<endpoint>` (the batch API is `<endpoint>/objects/batch`).
    pub url: String,
    /// Headers to send to it (from `git-lfs-authenticate` over SSH).
    pub headers: Vec<(String, Secret)>,
    /// Whether the run's HTTP credential goes along (the endpoint shares the
    /// push URL's origin).
    pub credential: bool,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectOutcome {
    Uploaded,
    AlreadyPresent,
    /// Dry run: the server lacks it; a real run would upload it.
    WouldUpload,
}

/// Why LFS refused or failed: the evidence for the classifier.
#[derive(Debug, Clone)]
pub struct LfsFailure {
    /// What was being done: "the batch request", "uploading build/app.bin".
    pub during: String,
    pub failure: HttpFailure,
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    operation: &'a str,
    transfers: [&'a str; 1],
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<RefName<'a>>,
    objects: Vec<BatchObject<'a>>,
    hash_algo: &'a str,
}

#[derive(Serialize)]
struct RefName<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct BatchObject<'a> {
    oid: &'a str,
    size: u64,
}

#[derive(Deserialize, Debug)]
struct BatchResponse {
    #[serde(default)]
    transfer: Option<String>,
    #[serde(default)]
    objects: Vec<ResponseObject>,
}

#[derive(Deserialize, Debug)]
struct ResponseObject {
    oid: String,
    #[serde(default)]
    actions: Option<Actions>,
    #[serde(default)]
    error: Option<ObjectError>,
}

#[derive(Deserialize, Debug)]
struct Actions {
    upload: Option<Action>,
    verify: Option<Action>,
}

#[derive(Deserialize, Debug)]
struct Action {
    href: String,
    #[serde(default)]
    header: HashMap<String, String>,
}

#[derive(Deserialize, Debug)]
struct ObjectError {
    code: u16,
    #[serde(default)]
    message: String,
}

/// Uploads what the server lacks of `objects` (or, with `dry_run`, only
/// asks). `refname` is the ref being pushed, sent as git-lfs sends it.
pub fn upload(
    access: &Access,
    store: &Store,
    objects: &[LfsObject],
    refname: &str,
    dry_run: bool,
) -> Result<Vec<ObjectOutcome>, LfsFailure> {
    let mut outcomes = Vec::with_capacity(objects.len());
    for chunk in objects.chunks(BATCH_SIZE) {
        let answer = batch(access, chunk, refname)?;
        for object in chunk {
            let found = answer
                .objects
                .iter()
                .find(|o| o.oid.eq_ignore_ascii_case(&object.pointer.oid));
            let during = format!("uploading {}", object.path);
            let Some(found) = found else {
                return Err(refusal(
                    &during,
                    None,
                    format!(
                        "the LFS server's batch answer does not mention {} (oid {})",
                        object.path, object.pointer.oid
                    ),
                ));
            };
            if let Some(e) = &found.error {
                return Err(refusal(&during, Some(e.code), e.message.clone()));
            }
            let upload = found.actions.as_ref().and_then(|a| a.upload.as_ref());
            let Some(upload) = upload else {
                outcomes.push(ObjectOutcome::AlreadyPresent);
                continue;
            };
            if dry_run {
                outcomes.push(ObjectOutcome::WouldUpload);
                continue;
            }
            put(access, store, object, upload, &during)?;
            if let Some(verify) = found.actions.as_ref().and_then(|a| a.verify.as_ref()) {
                verify_object(access, &object.pointer, verify, &during)?;
            }
            outcomes.push(ObjectOutcome::Uploaded);
        }
    }
    Ok(outcomes)
}

fn batch(
    access: &Access,
    objects: &[LfsObject],
    refname: &str,
) -> Result<BatchResponse, LfsFailure> {
    let during = "the LFS batch request";
    let body = serde_json::to_vec(&BatchRequest {
        operation: "upload",
        transfers: ["basic"],
        reference: Some(RefName { name: refname }),
        objects: objects
            .iter()
            .map(|o| BatchObject {
                oid: &o.pointer.oid,
                size: o.pointer.size,
            })
            .collect(),
        hash_algo: "sha256",
    })
    .expect("serialises");
    let url = format!("{}/objects/batch", access.url);
    let mut headers = json_headers();
    headers.extend(access.headers.iter().cloned());
    let answer = send(during, || Exchange {
        method: reqwest::Method::POST,
        url: &url,
        headers: headers.clone(),
        credential: access.credential,
        body: ExchangeBody::Bytes(body.clone()),
    })?;
    if !(200..300).contains(&answer.status) {
        return Err(refused(during, &answer));
    }
    let parsed: BatchResponse = serde_json::from_slice(&answer.body).map_err(|e| {
        refusal(
            during,
            Some(answer.status),
            format!("the LFS server's batch answer is not what the Git LFS API describes ({e})"),
        )
    })?;
    if let Some(t) = &parsed.transfer
        && t != "basic"
    {
        return Err(refusal(
            during,
            Some(answer.status),
            format!("the LFS server chose the '{t}' transfer; commit-back speaks only 'basic'"),
        ));
    }
    Ok(parsed)
}

fn put(
    access: &Access,
    store: &Store,
    object: &LfsObject,
    action: &Action,
    during: &str,
) -> Result<(), LfsFailure> {
    let path = store.path(&object.pointer.oid);
    if !store.has(&object.pointer) {
        return Err(refusal(
            during,
            None,
            format!(
                "the LFS object {} for {} is not in this clone's LFS store (the file held a pointer, not its content); run `git lfs fetch --all` in the step before, or commit the file's content",
                object.pointer.oid, object.path
            ),
        ));
    }
    let mut headers: Vec<(String, Secret)> = action
        .header
        .iter()
        .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
        .collect();
    if !has_header(&headers, "content-type") {
        headers.push((
            "Content-Type".into(),
            Secret::new("application/octet-stream".to_owned()),
        ));
    }
    let credential = credential_for(access, &action.href, &headers);
    let answer = send(during, || Exchange {
        method: reqwest::Method::PUT,
        url: &action.href,
        headers: headers.clone(),
        credential,
        body: ExchangeBody::File(path.clone(), object.pointer.size),
    })?;
    if !(200..300).contains(&answer.status) {
        return Err(refused(during, &answer));
    }
    Ok(())
}

fn verify_object(
    access: &Access,
    pointer: &Pointer,
    action: &Action,
    during: &str,
) -> Result<(), LfsFailure> {
    let mut headers = json_headers();
    headers.extend(
        action
            .header
            .iter()
            .map(|(k, v)| (k.clone(), Secret::new(v.clone()))),
    );
    let credential = credential_for(access, &action.href, &headers);
    let body = serde_json::to_vec(&BatchObject {
        oid: &pointer.oid,
        size: pointer.size,
    })
    .expect("serialises");
    let answer = send(during, || Exchange {
        method: reqwest::Method::POST,
        url: &action.href,
        headers: headers.clone(),
        credential,
        body: ExchangeBody::Bytes(body.clone()),
    })?;
    if !(200..300).contains(&answer.status) {
        return Err(refused(&format!("verifying ({during})"), &answer));
    }
    Ok(())
}

/// The run's credential goes to an action's href only on the endpoint's own
/// origin, and only when the server gave no Authorization of its own.
fn credential_for(access: &Access, href: &str, headers: &[(String, Secret)]) -> bool {
    access.credential
        && crate::origin::same_origin(&access.url, href)
        && !has_header(headers, "authorization")
}

fn has_header(headers: &[(String, Secret)], name: &str) -> bool {
    headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
}

fn json_headers() -> Vec<(String, Secret)> {
    vec![
        ("Accept".into(), Secret::new(LFS_JSON.to_owned())),
        ("Content-Type".into(), Secret::new(LFS_JSON.to_owned())),
    ]
}

/// Sends, trying again after a network failure, a 5xx or a 429.
fn send<'a>(during: &str, make: impl Fn() -> Exchange<'a>) -> Result<Answer, LfsFailure> {
    let mut last = None;
    for attempt in 0..TRIES {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(300 << attempt));
        }
        match http::exchange(make()) {
            Ok(a) if a.status >= 500 || a.status == 429 => last = Some(Ok(a)),
            Ok(a) => return Ok(a),
            Err(f) => last = Some(Err(f)),
        }
    }
    match last.expect("tried at least once") {
        Ok(a) => Ok(a),
        Err(failure) => Err(LfsFailure {
            during: during.to_owned(),
            failure,
        }),
    }
}

/// A refused answer: its status and message (an LFS error object's
/// `message`, Bitbucket's `{"error": {"message": …}}`, or the text).
fn refused(during: &str, answer: &Answer) -> LfsFailure {
    let message = error_message(&answer.body);
    refusal(during, Some(answer.status), message)
}

fn refusal(during: &str, status: Option<u16>, message: String) -> LfsFailure {
    let body_lines = message
        .lines()
        .map(|l| crate::text::untrusted(l).trim().to_owned())
        .filter(|l| !l.is_empty())
        .take(20)
        .collect();
    LfsFailure {
        during: during.to_owned(),
        failure: HttpFailure {
            status,
            body_lines,
            error: None,
        },
    }
}

fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let message = v
            .get("message")
            .or_else(|| v.get("error").and_then(|e| e.get("message")))
            .and_then(|m| m.as_str());
        if let Some(m) = message {
            return m.to_owned();
        }
    }
    String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_read_from_lfs_and_bitbucket_shapes() {
        assert_eq!(
            error_message(br#"{"message":"Not found","request_id":"x"}"#),
            "Not found"
        );
        assert_eq!(
            error_message(
                br#"{"type": "error", "error": {"message": "To access this repository, enable two-step verification."}}"#
            ),
            "To access this repository, enable two-step verification."
        );
        assert_eq!(error_message(b"Forbidden\n"), "Forbidden\n");
    }

    #[test]
    fn the_credential_stays_on_the_endpoint_origin() {
        let access = Access {
            url: "https://bitbucket.org/ws/r.git/info/lfs".into(),
            headers: vec![],
            credential: true,
        };
        assert!(credential_for(
            &access,
            "https://bitbucket.org/ws/r.git/info/lfs/objects/x",
            &[]
        ));
        assert!(!credential_for(
            &access,
            "https://storage.example.com/x",
            &[]
        ));
        assert!(!credential_for(
            &access,
            "http://bitbucket.org/ws/r.git/info/lfs/objects/x",
            &[]
        ));
        let given = [(
            "Authorization".to_owned(),
            Secret::new("Bearer s".to_owned()),
        )];
        assert!(!credential_for(&access, "https://bitbucket.org/x", &given));
    }
}
