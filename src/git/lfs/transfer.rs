//! The Git LFS batch API and the basic transfer, for uploads
//! (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md,
//! docs/api/basic-transfers.md): one batch request per hundred objects,
//! then for each object the server lacks a PUT of its content, streamed
//! from the local store, and the `verify` call when the server asks for it.
//!
//! Owns the wire format and which headers go where. It must never send the
//! run's credential anywhere but the push's own origin: a request carries
//! it (and goes through the Pipelines auth proxy, when the run uses it)
//! only when its URL shares the push URL's origin, and then only when the
//! server gave no Authorization header of its own for it. Every header
//! value the server hands out is given to `secret` (the redactor).

use super::{LfsObject, Pointer, Store};
use crate::git::http::{self, Answer, Exchange, ExchangeBody, HttpFailure};
use crate::progress::{self, Meter, Unit};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
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
    /// The push URL: its origin is the only one the credential goes to.
    pub push_url: String,
}

impl Access {
    fn on_push_origin(&self, url: &str) -> bool {
        crate::origin::same_origin(url, &self.push_url)
    }
}

/// What an upload came to: the outcome of each object settled, in order
/// (a prefix of the objects), and why it stopped, if it did.
#[derive(Debug)]
pub struct Transferred {
    pub outcomes: Vec<ObjectOutcome>,
    pub failure: Option<LfsFailure>,
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
/// asks). `refname` is the ref being pushed, sent as git-lfs sends it;
/// `secret` learns every header value the server hands out.
pub fn upload(
    access: &Access,
    store: &Store,
    objects: &[LfsObject],
    refname: &str,
    dry_run: bool,
    secret: &dyn Fn(&str),
) -> Transferred {
    let mut outcomes = Vec::with_capacity(objects.len());
    let meter = progress::meter("Uploading to Git LFS", Unit::Bytes, 0);
    let result = upload_batches(
        access,
        store,
        objects,
        refname,
        dry_run,
        secret,
        &mut outcomes,
        &meter,
    );
    meter.finish(result.is_ok());
    Transferred {
        outcomes,
        failure: result.err(),
    }
}

#[allow(clippy::too_many_arguments)]
fn upload_batches(
    access: &Access,
    store: &Store,
    objects: &[LfsObject],
    refname: &str,
    dry_run: bool,
    secret: &dyn Fn(&str),
    outcomes: &mut Vec<ObjectOutcome>,
    meter: &Arc<Meter>,
) -> Result<(), LfsFailure> {
    for chunk in objects.chunks(BATCH_SIZE) {
        let answer = batch(access, chunk, refname)?;
        let to_send: u64 = chunk
            .iter()
            .filter(|o| {
                answer.objects.iter().any(|a| {
                    a.oid.eq_ignore_ascii_case(&o.pointer.oid)
                        && a.actions.as_ref().is_some_and(|x| x.upload.is_some())
                })
            })
            .map(|o| o.pointer.size)
            .sum();
        if !dry_run {
            meter.grow(to_send);
        }
        for action in answer
            .objects
            .iter()
            .filter_map(|o| o.actions.as_ref())
            .flat_map(|a| [&a.upload, &a.verify])
            .flatten()
        {
            action.header.values().for_each(|v| secret(v));
        }
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
            put(access, store, object, upload, &during, meter)?;
            if let Some(verify) = found.actions.as_ref().and_then(|a| a.verify.as_ref()) {
                verify_object(access, &object.pointer, verify, &during)?;
            }
            outcomes.push(ObjectOutcome::Uploaded);
        }
    }
    Ok(())
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
        on_push_origin: access.on_push_origin(&url),
        body: ExchangeBody::Bytes(body.clone()),
        progress: None,
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
    meter: &Arc<Meter>,
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
    // A retried upload starts again from here, in the count too.
    let before = meter.done();
    let answer = send(during, || Exchange {
        method: reqwest::Method::PUT,
        url: &action.href,
        headers: headers.clone(),
        on_push_origin: access.on_push_origin(&action.href),
        body: {
            meter.set(before, 0);
            ExchangeBody::File(path.clone(), object.pointer.size)
        },
        progress: Some(meter.clone()),
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
    let body = serde_json::to_vec(&BatchObject {
        oid: &pointer.oid,
        size: pointer.size,
    })
    .expect("serialises");
    let answer = send(during, || Exchange {
        method: reqwest::Method::POST,
        url: &action.href,
        headers: headers.clone(),
        on_push_origin: access.on_push_origin(&action.href),
        body: ExchangeBody::Bytes(body.clone()),
        progress: None,
    })?;
    if !(200..300).contains(&answer.status) {
        return Err(refused(&format!("verifying ({during})"), &answer));
    }
    Ok(())
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

/// Sends, trying again after a network failure, a 500/502/503/504 or a 429.
fn send<'a>(during: &str, make: impl Fn() -> Exchange<'a>) -> Result<Answer, LfsFailure> {
    let mut last = None;
    for attempt in 0..TRIES {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(300 << attempt));
        }
        match http::exchange(make()) {
            // Transient answers only: 507 (no storage) is not.
            Ok(a) if matches!(a.status, 429 | 500 | 502 | 503 | 504) => last = Some(Ok(a)),
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
    fn only_the_push_origin_is_the_push_origin() {
        let access = Access {
            url: "https://bitbucket.org/ws/r.git/info/lfs".into(),
            headers: vec![],
            push_url: "https://bitbucket.org/ws/r.git".into(),
        };
        assert!(access.on_push_origin("https://bitbucket.org/ws/r.git/info/lfs/objects/x"));
        assert!(access.on_push_origin("https://bitbucket.org:443/other"));
        assert!(!access.on_push_origin("https://storage.example.com/x"));
        assert!(!access.on_push_origin("http://bitbucket.org/ws/r.git/info/lfs/objects/x"));
        assert!(!access.on_push_origin("https://bitbucket.org:8443/x"));
        let ssh = Access {
            push_url: "git@bitbucket.org:ws/r.git".into(),
            ..access
        };
        assert!(!ssh.on_push_origin("https://bitbucket.org/ws/r.git/info/lfs"));
    }
}
