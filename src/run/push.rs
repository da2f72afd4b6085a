//! The push of one artifact commit, as a state machine.
//!
//! ```text
//!            start ─ checked-out branch ──────────────┐
//!              └──── another branch or repository ─┐  │
//!                                                  v  v
//!   ┌──────────> Fetch ── landed ──> End(Landed)    Push ── accepted ──> End(Pushed)
//!   │              │ tip                             │ ├── race ──────> Wait ─> Fetch
//!   │              v                                 │ ├── network ───> Wait ─> Push
//!   │           Replay ── already upstream ──> End   │ └── refused / retries out ─┐
//!   │              │ ├─── conflict ──> End(Refused)  │                            v
//!   │              v replayed                        │           answer lost? ─> Verify ─ landed ─> End(Landed)
//!   └──────────── Push <─────────────────────────────┘                 no │         └ not landed ─> End(Refused)
//!                                                                         └────────> End(Refused)
//! ```
//!
//! [`Machine`] is the table: a pure function from (step, event) to the next
//! step, tested without a network. [`Pusher::deliver`] performs each step
//! (push, fetch, replay in the object database, wait, verify) and turns its
//! outcome into an event.
//!
//! Owns the order of the steps and the invariants that hang on it:
//! - the working tree, index, HEAD and branches are touched only after the
//!   push was accepted (or found upstream), and only when the target is the
//!   branch checked out here ([`Target::Checkout`]), or a detached HEAD the
//!   landed commit was built on ([`Target::Detached`]); a replay happens in
//!   the object database; failing to update the clone afterwards is a
//!   warning, and leaves it as the build left it;
//! - before a replay, and before any verdict but `pushed` when an answer may
//!   have been lost, the fetched history is searched for this run's commits
//!   (by id, and by the run's trailer line): a commit that landed is never
//!   pushed twice or reported as failed;
//! - a remote tag is never moved: one that exists at another commit stops
//!   the run before anything is pushed (`tag_exists`).
//!
//! Every way out that leaves an artifact commit not upstream goes through
//! `refused` (or the caller's error path), which writes the recovery files.

use super::{Pusher, short};
use crate::checkout::Target;
use crate::config::Transport;
use crate::explain::{ErrorClass, ErrorCode, Evidence, TagConflict, classify};
use crate::git::ArtifactCommit;
use crate::git::Oid;
use crate::git::remote::{BranchTip, Endpoint, PushOutcome, RefUpdate};
use crate::report::{self, BlockageKind, Status};
use anyhow::{Context as _, bail};

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Ask where the target branch is (and whether this run's commit is there).
    Fetch,
    /// Push the current artifact commit (and the tag, over HTTP).
    Push,
    /// Back off, then go on.
    Wait(After),
    /// Rebuild the artifact commit on the fetched tip, in the object database.
    Replay,
    /// An answer may have been lost: ask the server before a failure verdict.
    Verify,
    End(End),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum After {
    Push,
    Fetch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The server accepted the current commit.
    Pushed,
    /// An artifact commit of this run was found upstream (its answer was lost).
    Landed,
    /// Upstream already holds exactly these changes.
    AlreadyUpstream,
    /// The push failed for good: classify, fall back, keep the commit.
    Refused,
    /// An event the table does not expect: a bug; the commit is kept.
    Broken,
}

/// What a step's effect came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    Accepted,
    /// `unanswered`: the server may have applied it without an answer.
    Refused {
        kind: BlockageKind,
        unanswered: bool,
    },
    /// TAG exists on the remote at a commit that is not this run's.
    TagTaken,
    /// An artifact commit of this run is in the fetched history.
    Landed,
    /// The branch's tip (or its absence) was fetched; ours is not in it.
    Tip,
    FetchFailed {
        transient: bool,
    },
    Replayed,
    AlreadyUpstream,
    Conflict,
    Waited,
    /// Verify: ours is not upstream, or the server could not be asked.
    NotLanded,
}

/// The transition table and the counters it decides with.
#[derive(Debug, Clone)]
pub(super) struct Machine {
    retries: u32,
    /// Push attempts made so far.
    pub attempts: u32,
    fetch_failures: u32,
    /// Some attempt may have been applied without an answer.
    answer_may_be_lost: bool,
}

impl Machine {
    pub fn new(retries: u32) -> Machine {
        Machine {
            retries,
            attempts: 0,
            fetch_failures: 0,
            answer_may_be_lost: false,
        }
    }

    /// The checked-out branch is pushed at once; another branch or
    /// repository is asked for its tip first (the commit is built on it).
    pub fn start(target: Target) -> Step {
        match target {
            Target::Checkout => Step::Push,
            Target::Detached | Target::OtherBranch | Target::OtherRepository => Step::Fetch,
        }
    }

    pub fn next(&mut self, step: Step, event: Event) -> Step {
        use Event as E;
        match (step, event) {
            (Step::Push, E::Accepted) => {
                self.attempts += 1;
                Step::End(End::Pushed)
            }
            (Step::Push, E::TagTaken) => Step::End(End::Refused),
            (Step::Push, E::Refused { kind, unanswered }) => {
                self.attempts += 1;
                self.answer_may_be_lost |= unanswered;
                if kind.is_transient() && self.attempts <= self.retries {
                    Step::Wait(if kind == BlockageKind::NonFastForward {
                        After::Fetch
                    } else {
                        After::Push
                    })
                } else {
                    self.give_up()
                }
            }
            (Step::Wait(After::Push), E::Waited) => Step::Push,
            (Step::Wait(After::Fetch), E::Waited) => Step::Fetch,
            (Step::Fetch, E::Landed) => Step::End(End::Landed),
            (Step::Fetch, E::Tip) => Step::Replay,
            (Step::Fetch, E::FetchFailed { transient }) => {
                self.fetch_failures += 1;
                if transient && self.fetch_failures <= self.retries {
                    Step::Wait(After::Fetch)
                } else {
                    self.give_up()
                }
            }
            (Step::Replay, E::Replayed) => Step::Push,
            (Step::Replay, E::AlreadyUpstream) => Step::End(End::AlreadyUpstream),
            // The tip was just fetched: none of ours is in it.
            (Step::Replay, E::Conflict) => Step::End(End::Refused),
            (Step::Verify, E::Landed) => Step::End(End::Landed),
            (Step::Verify, E::NotLanded) => Step::End(End::Refused),
            (Step::End(end), _) => Step::End(end),
            _ => Step::End(End::Broken),
        }
    }

    /// A failure verdict, after asking the server when an answer may be lost.
    fn give_up(&self) -> Step {
        if self.answer_may_be_lost {
            Step::Verify
        } else {
            Step::End(End::Refused)
        }
    }

    /// Every attempt takes at most Push, Wait, Fetch, Replay; then Verify, End.
    pub fn step_limit(&self) -> u32 {
        (self.retries + 2) * 6
    }
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Fetch => "fetch",
            Step::Push => "push",
            Step::Wait(_) => "wait",
            Step::Replay => "replay",
            Step::Verify => "verify",
            Step::End(_) => "end",
        }
    }
}

/// The remote's TAG: absent, this run's own (an attempt landed it), or
/// another commit's (never moved).
enum RemoteTag {
    Absent,
    Ours { object: Oid, commit: Oid },
    Taken(TagConflict),
}

/// Times the server is asked where the branch is before the answer is left open.
const ASKS: u32 = 3;

/// What the driver carries between steps.
struct Progress {
    /// The commit the next push sends (the artifact commit, or its replay).
    current: ArtifactCommit,
    /// The last fetched tip (None: the branch does not exist).
    tip: Option<Oid>,
    /// This run's commit found upstream.
    landed: Option<ArtifactCommit>,
    /// Why the last step failed.
    evidence: Evidence,
    /// The refs of the push that ended the run (to tell the tag's fate).
    last_refs: Vec<RefUpdate>,
    /// The remote tag was checked (once, before the first push).
    tag_checked: bool,
    /// The remote tag is this run's own (an earlier attempt landed it on a
    /// server without atomic pushes): it may follow the replayed commit.
    tag_is_ours: bool,
    /// Verify could not ask the server whether the branch landed.
    landing_unknown: bool,
}

impl Pusher<'_> {
    /// Pushes `artifact` through the machine; the run's verdict is in the report.
    pub(super) fn deliver(
        &mut self,
        endpoint: &Endpoint,
        artifact: &ArtifactCommit,
    ) -> anyhow::Result<()> {
        let mut machine = Machine::new(self.config.retries);
        let mut p = Progress {
            current: artifact.clone(),
            tip: None,
            landed: None,
            evidence: Evidence::default(),
            last_refs: Vec::new(),
            tag_checked: false,
            tag_is_ours: false,
            landing_unknown: false,
        };
        let step = Machine::start(self.config.target);
        let result = self.drive(endpoint, artifact, &mut machine, &mut p, step);
        // A tag an attempt landed without its branch is withdrawn on every
        // way out but a landed push (and not when the server could not say
        // whether the branch landed).
        let landed = matches!(self.report.status, Status::Pushed);
        if p.tag_is_ours && !landed && !p.landing_unknown {
            self.withdraw_tag(endpoint);
            // No blockage carries the note on these ways out: log it.
            for note in self.closing_notes.drain(..) {
                self.log.warning(note);
            }
        }
        result
    }

    fn drive(
        &mut self,
        endpoint: &Endpoint,
        artifact: &ArtifactCommit,
        machine: &mut Machine,
        p: &mut Progress,
        mut step: Step,
    ) -> anyhow::Result<()> {
        for _ in 0..machine.step_limit() {
            inject_failure(step.name())?;
            self.current = Some(p.current.clone());
            let event = match step {
                Step::Push => self.push_step(endpoint, p)?,
                Step::Fetch => self.fetch_step(endpoint, p),
                Step::Replay => self.replay_step(artifact, p)?,
                Step::Wait(_) => {
                    std::thread::sleep(super::backoff(machine.attempts.max(1)));
                    Event::Waited
                }
                Step::Verify => self.verify_step(endpoint, p),
                Step::End(end) => return self.end(end, endpoint, artifact, p),
            };
            step = machine.next(step, event);
            self.report.attempts = machine.attempts;
            if let (Step::Wait(after), Event::Refused { kind, .. }) = (step, event) {
                self.log.info(format!(
                    "{} — retrying{}.",
                    super::retry_reason(kind, &p.evidence),
                    if after == After::Fetch {
                        " after fetching"
                    } else {
                        ""
                    }
                ));
            }
        }
        bail!(
            "the push did not finish within {} steps",
            machine.step_limit()
        )
    }

    fn push_step(&mut self, endpoint: &Endpoint, p: &mut Progress) -> anyhow::Result<Event> {
        let config = self.config;
        if let Some(tag) = &config.tag
            && !p.tag_checked
        {
            p.tag_checked = true;
            match self.remote_tag(endpoint, tag, &p.current) {
                RemoteTag::Absent => {}
                RemoteTag::Ours { .. } => p.tag_is_ours = true,
                RemoteTag::Taken(conflict) => {
                    p.evidence = Evidence {
                        tag_conflict: Some(conflict),
                        ..Default::default()
                    };
                    return Ok(Event::TagTaken);
                }
            }
        }
        let attempt = self.report.attempt_outcomes.len() as u32 + 1;
        self.report.attempts = attempt;
        // LFS objects first, as git-lfs's pre-push hook sends them: a
        // refusal there stops this attempt before the git push is sent.
        let lfs_started = std::time::Instant::now();
        if let Some(evidence) = self.upload_lfs(&p.current, p.tip) {
            self.report
                .timings
                .push_ms
                .push(lfs_started.elapsed().as_millis() as u64);
            return Ok(self.attempt_refused(p, evidence));
        }
        let lfs_ms = lfs_started.elapsed().as_millis() as u64;
        let mut updates = vec![(
            p.current.oid,
            format!("refs/heads/{}", config.branch),
            false,
        )];
        // Over HTTP the tag travels in the same, atomic, request. Over SSH
        // libgit2 cannot ask for atomic, so the tag follows the branch.
        if let (Some(tag), Some(tag_oid), Transport::Http) =
            (&config.tag, self.tag_oid, config.remote.transport)
        {
            updates.push((tag_oid, format!("refs/tags/{tag}"), p.tag_is_ours));
        }
        self.log.info(format!(
            "Pushing {} to {} (attempt {attempt}).",
            short(p.current.oid),
            config.branch
        ));
        if !self.sent.iter().any(|c| c.oid == p.current.oid) {
            self.sent.push(p.current.clone());
        }
        let attempt_started = std::time::Instant::now();
        let pushed = endpoint.push(self.repo, &updates);
        self.report
            .timings
            .push_ms
            .push(attempt_started.elapsed().as_millis() as u64 + lfs_ms);
        if config.remote.transport == Transport::Ssh {
            self.ssh_bytes += pushed.bytes;
        }
        if pushed.objects > 0 {
            self.pushed_objects = pushed.objects;
            self.pack_writer = Some(if pushed.streamed {
                "streamed"
            } else {
                "libgit2"
            });
        }
        self.record_refs(&pushed.refs);
        // A tag this run landed (on a server without atomic pushes) is its own.
        if pushed.refs.iter().skip(1).any(|r| r.result == Some(Ok(()))) {
            p.tag_is_ours = true;
        }
        p.last_refs = pushed.refs;
        match pushed.outcome {
            PushOutcome::Accepted(transcript) => {
                self.record_attempt(&p.current, None);
                transcript
                    .remote_lines
                    .iter()
                    .for_each(|l| self.log.remote(l));
                Ok(Event::Accepted)
            }
            PushOutcome::Refused(evidence) => Ok(self.attempt_refused(p, evidence)),
        }
    }

    /// An attempt that failed (the LFS upload or the push): the server's
    /// lines, the kind, the attempt log, and whether the push may have been
    /// applied unanswered (never for the LFS upload, which comes first).
    fn attempt_refused(&mut self, p: &mut Progress, evidence: Evidence) -> Event {
        evidence
            .remote_lines
            .iter()
            .for_each(|l| self.log.remote(l));
        let kind = classify::kind_of(&evidence, self.config.credential.kind());
        self.record_attempt(&p.current, Some((kind, &evidence)));
        let unanswered = self
            .report
            .attempt_outcomes
            .last()
            .is_some_and(super::verdict::unanswered);
        p.evidence = evidence;
        Event::Refused { kind, unanswered }
    }

    fn fetch_step(&mut self, endpoint: &Endpoint, p: &mut Progress) -> Event {
        match endpoint.fetch_branch(self.repo, &self.config.branch) {
            Ok(BranchTip::At(tip)) => {
                p.tip = Some(tip);
                match self.landed_in(tip) {
                    Ok(Some(landed)) => {
                        p.landed = Some(landed);
                        Event::Landed
                    }
                    Ok(None) => Event::Tip,
                    Err(e) => {
                        // Not knowing is not landing: the replay builds on
                        // the tip as before, and the next push tells.
                        self.log
                            .debug(format!("could not search the fetched history: {e:#}"));
                        Event::Tip
                    }
                }
            }
            Ok(BranchTip::Missing) => {
                p.tip = None;
                Event::Tip
            }
            Err(evidence) => {
                evidence
                    .remote_lines
                    .iter()
                    .for_each(|l| self.log.remote(l));
                let transient =
                    classify::kind_of(&evidence, self.config.credential.kind()).is_transient();
                p.evidence = evidence;
                Event::FetchFailed { transient }
            }
        }
    }

    /// The current commit rebuilt on the fetched tip: a cherry-pick within
    /// this repository, a copy of the FILES paths for another one.
    fn replay_step(
        &mut self,
        artifact: &ArtifactCommit,
        p: &mut Progress,
    ) -> anyhow::Result<Event> {
        let (repo, config) = (self.repo, self.config);
        let outcome = match (config.target, p.tip) {
            (Target::OtherRepository, tip) => repo.overlay(artifact.oid, tip, &config.files)?,
            // Already on the tip (the first push to a branch whose tip is
            // this checkout's HEAD): nothing to replay.
            (_, Some(tip)) if p.current.parent == Some(tip) => return Ok(Event::Replayed),
            (_, Some(tip)) => repo.rebase(p.current.oid, tip)?,
            // The branch does not exist (yet, or any more): pushing creates it.
            (target, None) => {
                if target == Target::Detached && p.current.oid == artifact.oid {
                    self.log.info(format!(
                        "{} does not exist there: it is created at the artifact commit, on top of this checkout's HEAD and its history.",
                        config.branch
                    ));
                }
                return Ok(Event::Replayed);
            }
        };
        Ok(match outcome {
            crate::git::RebaseOutcome::Rebased(new) => {
                let files = repo.files_between(p.tip, new)?;
                self.log.info(match p.tip {
                    Some(tip) => format!(
                        "{} is at {}; the artifact commit is {} on top of it ({} file(s)).",
                        config.branch,
                        short(tip),
                        short(new),
                        files.len()
                    ),
                    None => format!(
                        "{} does not exist there yet; it will be created at {} ({} file(s)).",
                        config.branch,
                        short(new),
                        files.len()
                    ),
                });
                p.current = ArtifactCommit {
                    oid: new,
                    parent: p.tip,
                    message: p.current.message.clone(),
                    files: files.into(),
                };
                self.set_commit(&p.current);
                self.make_tag(new)?;
                Event::Replayed
            }
            crate::git::RebaseOutcome::AlreadyUpstream => Event::AlreadyUpstream,
            crate::git::RebaseOutcome::Conflict(files) => {
                p.evidence = Evidence {
                    conflicts: files,
                    ..Default::default()
                };
                Event::Conflict
            }
        })
    }

    /// Asks where the branch is, a few times with backoff: this run's
    /// commit there means the push landed and only its answer was lost.
    fn verify_step(&mut self, endpoint: &Endpoint, p: &mut Progress) -> Event {
        self.log.info(format!(
            "Asking the server where {} is before reporting a failure.",
            self.config.branch
        ));
        let mut unknown = None;
        for ask in 1..=ASKS {
            match endpoint.fetch_branch(self.repo, &self.config.branch) {
                Ok(BranchTip::At(tip)) => {
                    match self.landed_in(tip) {
                        Ok(Some(landed)) => {
                            p.landed = Some(landed);
                            return Event::Landed;
                        }
                        Ok(None) => unknown = None,
                        Err(e) => unknown = Some(format!("{e:#}")),
                    }
                    break;
                }
                Ok(BranchTip::Missing) => {
                    unknown = None;
                    break;
                }
                Err(e) => {
                    unknown = Some(
                        e.git_error
                            .as_ref()
                            .map(|g| g.message.lines().next().unwrap_or_default().to_owned())
                            .unwrap_or_else(|| "no answer".into()),
                    );
                    if ask < ASKS {
                        std::thread::sleep(super::backoff(ask));
                    }
                }
            }
        }
        if let Some(why) = unknown {
            p.landing_unknown = true;
            self.closing_notes.push(format!(
                "The server could not be asked whether the push landed ({why}): the push may have landed; check {} before rerunning.",
                self.config.branch
            ));
        }
        Event::NotLanded
    }

    /// Where the remote's TAG points, as seen from this run. A tag that
    /// cannot be read counts as absent and is left to the push (which
    /// never forces it).
    fn remote_tag(&self, endpoint: &Endpoint, tag: &str, current: &ArtifactCommit) -> RemoteTag {
        let remote = match endpoint.fetch_tag(self.repo, tag) {
            Ok(Some(remote)) => remote,
            Ok(None) => return RemoteTag::Absent,
            Err(e) => {
                self.log.debug(format!(
                    "could not read the remote tag {tag}: {}",
                    e.git_error.map(|g| g.message).unwrap_or_default()
                ));
                return RemoteTag::Absent;
            }
        };
        let commit = self.repo.peel_to_commit(remote);
        match commit {
            Some(c) if c == current.oid || self.sent.iter().any(|s| s.oid == c) => {
                RemoteTag::Ours {
                    object: remote,
                    commit: c,
                }
            }
            _ => RemoteTag::Taken(TagConflict {
                tag: tag.to_owned(),
                remote: commit.unwrap_or(remote).to_string(),
                ours: current.oid.to_string(),
            }),
        }
    }

    fn end(
        &mut self,
        end: End,
        endpoint: &Endpoint,
        artifact: &ArtifactCommit,
        p: &mut Progress,
    ) -> anyhow::Result<()> {
        match end {
            End::Pushed => {
                let tag_pushed = self.tag_fate_in(&p.last_refs);
                self.landed_well(endpoint, artifact, p.current.clone(), false, tag_pushed);
                Ok(())
            }
            End::Landed => {
                let landed = p.landed.clone().context("landed without a commit")?;
                self.landed_well(endpoint, artifact, landed, true, None);
                Ok(())
            }
            End::AlreadyUpstream => {
                self.report.status = Status::NothingToCommit;
                self.report.commit = None;
                match p.tip {
                    Some(tip) => {
                        self.report.summary = format!(
                            "Nothing to push: {} already holds these changes (at {}).",
                            self.config.branch,
                            short(tip)
                        );
                        // Only the checked-out branch follows a tip that is
                        // not this run's commit.
                        if self.config.target == Target::Checkout {
                            self.follow(artifact, tip);
                        }
                    }
                    None => {
                        self.report.summary = format!(
                            "Nothing to push: FILES ({}) select no file to copy.",
                            self.config.files.join(" ")
                        )
                    }
                }
                self.log.success(&self.report.summary);
                if let Some(tag) = &self.config.tag {
                    self.log.warning(format!(
                        "TAG {tag} was not pushed: there is no new commit to tag."
                    ));
                }
                Ok(())
            }
            End::Refused => {
                if p.tag_is_ours && !p.landing_unknown {
                    self.withdraw_tag(endpoint);
                    p.tag_is_ours = false;
                }
                if self.report.attempts > 1 {
                    self.closing_notes
                        .push(format!("{}.", self.attempts_summary()));
                }
                let (evidence, current) = (std::mem::take(&mut p.evidence), p.current.clone());
                self.refused(evidence, &current)
            }
            End::Broken => bail!("the push machine met an event it does not expect"),
        }
    }

    /// The tag's fate in an accepted push: Some(Ok) landed with it,
    /// Some(Err) refused, None not part of it (SSH) or not answered.
    fn tag_fate_in(&self, refs: &[RefUpdate]) -> Option<Result<(), Evidence>> {
        let tag = self.config.tag.as_ref()?;
        let r = refs.iter().find(|r| r.name == format!("refs/tags/{tag}"))?;
        match r.result.clone()? {
            Ok(()) => Some(Ok(())),
            Err(status) => Some(Err(Evidence {
                ref_status: Some(status),
                ..Default::default()
            })),
        }
    }

    /// `commit` (of this run) is upstream: the tag follows, the clone
    /// follows, the report says pushed. Nothing here can fail the run.
    fn landed_well(
        &mut self,
        endpoint: &Endpoint,
        artifact: &ArtifactCommit,
        commit: ArtifactCommit,
        answer_lost: bool,
        tag_fate: Option<Result<(), Evidence>>,
    ) {
        let lost_at = if answer_lost {
            self.label_lost_answer(&commit)
        } else {
            None
        };
        self.set_commit(&commit);
        let tag_refusal = match (&self.config.tag, tag_fate) {
            (None, _) => None,
            (Some(_), Some(Ok(()))) => None,
            (Some(_), Some(Err(e))) => Some(e),
            (Some(tag), None) => self.push_tag_alone(endpoint, tag, &commit).err(),
        };
        if tag_refusal.is_none()
            && let (Some(tag), Some(tag_oid), Target::Checkout | Target::Detached) =
                (&self.config.tag, self.tag_oid, self.config.target)
        {
            match self.repo.record_tag(tag, tag_oid) {
                Ok(Some(other)) => self.log.warning(format!(
                    "the local tag {tag} points at {}: left as it is (the remote's is {}).",
                    short(other),
                    short(tag_oid)
                )),
                Ok(None) => {}
                Err(e) => self
                    .log
                    .warning(format!("could not create the local tag {tag}: {e:#}")),
            }
        }
        self.follow(artifact, commit.oid);
        self.report.status = Status::Pushed;
        self.report.summary = match lost_at {
            Some(n) => format!(
                "Pushed {} to {}: the server's answer to attempt {n} was lost, but {} holds the commit ({}).",
                short(commit.oid),
                self.config.branch,
                self.config.branch,
                self.numbers(commit.files.len())
            ),
            None => format!(
                "Pushed {} to {}: {}.",
                short(commit.oid),
                self.config.branch,
                self.numbers(commit.files.len())
            ),
        };
        if self.report.attempts > 1 {
            self.log.info(format!("{}.", self.attempts_summary()));
        }
        match tag_refusal {
            None => self.log.success(&self.report.summary),
            Some(evidence) => self.tag_refused(evidence),
        }
    }

    // Evidence is built once per refused tag; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    /// The tag, pushed on its own after the branch (SSH, or an answer that
    /// was lost): idempotent when the remote tag is already this commit's.
    fn push_tag_alone(
        &mut self,
        endpoint: &Endpoint,
        tag: &str,
        commit: &ArtifactCommit,
    ) -> Result<(), Evidence> {
        let ours = match self.remote_tag(endpoint, tag, commit) {
            RemoteTag::Taken(conflict) => {
                return Err(Evidence {
                    tag_conflict: Some(conflict),
                    ..Default::default()
                });
            }
            RemoteTag::Ours { object, commit: at } if at == commit.oid => {
                self.tag_oid = Some(object);
                self.log.info(format!(
                    "Tag {tag} is already on the remote at {}.",
                    short(commit.oid)
                ));
                return Ok(());
            }
            RemoteTag::Ours { .. } => true,
            RemoteTag::Absent => false,
        };
        if self
            .tag_oid
            .is_none_or(|t| self.repo.peel_to_commit(t) != Some(commit.oid))
        {
            self.make_tag(commit.oid).map_err(|e| Evidence {
                git_error: Some(crate::explain::GitErrorInfo {
                    class: ErrorClass::Tag,
                    code: ErrorCode::Generic,
                    message: format!("{e:#}"),
                }),
                ..Default::default()
            })?;
        }
        let tag_oid = self.tag_oid.expect("made above");
        self.log.info(format!("Pushing tag {tag}."));
        let pushed = endpoint.push(self.repo, &[(tag_oid, format!("refs/tags/{tag}"), ours)]);
        self.record_refs(&pushed.refs);
        match pushed.outcome {
            PushOutcome::Accepted(_) => Ok(()),
            PushOutcome::Refused(e) => {
                e.remote_lines.iter().for_each(|l| self.log.remote(l));
                Err(e)
            }
        }
    }

    /// The run failed after an attempt landed the tag but not the branch
    /// (a server without atomic pushes): the tag this run created points at
    /// a commit the branch does not hold, so it is deleted again.
    fn withdraw_tag(&mut self, endpoint: &Endpoint) {
        let Some(tag) = self.config.tag.clone() else {
            return;
        };
        let name = format!("refs/tags/{tag}");
        let pushed = endpoint.push(self.repo, &[(Oid::ZERO_SHA1, name, true)]);
        self.record_refs(&pushed.refs);
        match pushed.outcome {
            PushOutcome::Accepted(_) => self.closing_notes.push(format!(
                "An attempt had created the tag {tag} without the branch (the server does not offer atomic pushes); it was deleted again."
            )),
            PushOutcome::Refused(_) => self.closing_notes.push(format!(
                "An attempt created the tag {tag} without the branch (the server does not offer atomic pushes), and it could not be deleted: it points at a commit {} does not hold.",
                self.config.branch
            )),
        }
    }

    /// The branch landed, the tag did not: `pushed`, with the tag's
    /// refusal explained (its kind decides the exit code).
    fn tag_refused(&mut self, evidence: Evidence) {
        let tag = self.config.tag.clone().unwrap_or_default();
        let mut blockage = classify::classify(&evidence, &self.situation(None));
        blockage.summary = format!(
            "{} The tag {tag} was not pushed: {}",
            self.report.summary, blockage.summary
        );
        self.report.summary = blockage.summary.clone();
        self.log_blockage(&blockage);
        self.report.blockage = Some(blockage);
    }

    /// The clone follows what landed, when the target is the branch checked
    /// out here; a failure is a warning (the push stands).
    fn follow(&self, artifact: &ArtifactCommit, landed: Oid) {
        // A detached HEAD follows only a commit built right on it.
        let follows = match self.config.target {
            Target::Checkout => true,
            Target::Detached => self.repo.first_parent(landed) == artifact.parent,
            Target::OtherBranch | Target::OtherRepository => false,
        };
        if !follows {
            self.log.info(format!(
                "The clone is left as the build left it ({} is not the branch checked out here, or its tip is not this checkout's HEAD).",
                self.config.branch
            ));
            return;
        }
        let result = inject_failure("follow").and_then(|()| self.repo.adopt(artifact.oid, landed));
        if let Err(e) = result {
            self.log.warning(format!(
                "{} is upstream, but this clone could not follow it: {e:#}. The push stands; `git pull` updates the clone.",
                short(landed)
            ));
        }
    }

    /// Names the attempt that lost its answer: of those that pushed this
    /// commit, the last network failure the server did not answer.
    fn label_lost_answer(&mut self, commit: &ArtifactCommit) -> Option<u32> {
        let oid = commit.oid.to_string();
        let log = &mut self.report.attempt_outcomes;
        let pick = (0..log.len()).rev().find(|&i| {
            log[i].commit == oid
                && log[i].outcome != "accepted"
                && super::verdict::unanswered(&log[i])
        })?;
        log[pick].outcome = "answer_lost".into();
        Some(log[pick].attempt)
    }

    fn record_refs(&mut self, refs: &[RefUpdate]) {
        for r in refs {
            let (status, message) = match &r.result {
                None => continue,
                Some(Ok(())) if r.new.is_zero() => ("deleted", None),
                Some(Ok(())) if r.old == Some(r.new) => ("unchanged", None),
                Some(Ok(())) => ("updated", None),
                Some(Err(m)) => ("rejected", Some(m.clone())),
            };
            let outcome = report::RefOutcome {
                name: r.name.clone(),
                old: r.old.map(|o| o.to_string()),
                new: r.new.to_string(),
                status: status.into(),
                message,
            };
            match self.report.refs.iter_mut().find(|o| o.name == r.name) {
                Some(o) => *o = outcome,
                None => self.report.refs.push(outcome),
            }
        }
    }
}

/// Test builds only: `COMMIT_BACK_TEST_FAIL_AT=<step>` makes that step fail
/// with an error, to prove every way out keeps the commit. Release builds
/// have no such variable.
fn inject_failure(step: &str) -> anyhow::Result<()> {
    #[cfg(debug_assertions)]
    if std::env::var("COMMIT_BACK_TEST_FAIL_AT").is_ok_and(|s| s == step) {
        bail!("injected failure at step '{step}'");
    }
    let _ = step;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use BlockageKind::*;

    fn refused(kind: BlockageKind) -> Event {
        Event::Refused {
            kind,
            unanswered: false,
        }
    }

    fn lost() -> Event {
        Event::Refused {
            kind: Network,
            unanswered: true,
        }
    }

    /// Runs the table from `start` over `events`; the steps it went through.
    fn walk(retries: u32, start: Step, events: &[Event]) -> Vec<Step> {
        let mut m = Machine::new(retries);
        let mut step = start;
        let mut seen = vec![step];
        for e in events {
            step = m.next(step, *e);
            seen.push(step);
        }
        seen
    }

    #[test]
    fn the_table() {
        use Event as E;
        use Step as S;
        // (what, RETRIES, first step, events, steps gone through)
        type Case = (&'static str, u32, Step, Vec<Event>, Vec<Step>);
        let cases: Vec<Case> = vec![
            (
                "accepted at once",
                3,
                S::Push,
                vec![E::Accepted],
                vec![S::Push, S::End(End::Pushed)],
            ),
            (
                "a race: fetch, replay, push",
                3,
                S::Push,
                vec![
                    refused(NonFastForward),
                    E::Waited,
                    E::Tip,
                    E::Replayed,
                    E::Accepted,
                ],
                vec![
                    S::Push,
                    S::Wait(After::Fetch),
                    S::Fetch,
                    S::Replay,
                    S::Push,
                    S::End(End::Pushed),
                ],
            ),
            (
                "a race whose fetch shows ours landed: nothing pushed twice",
                3,
                S::Push,
                vec![
                    lost(),
                    E::Waited,
                    refused(NonFastForward),
                    E::Waited,
                    E::Landed,
                ],
                vec![
                    S::Push,
                    S::Wait(After::Push),
                    S::Push,
                    S::Wait(After::Fetch),
                    S::Fetch,
                    S::End(End::Landed),
                ],
            ),
            (
                "a network failure is retried by pushing again",
                1,
                S::Push,
                vec![refused(Network), E::Waited, E::Accepted],
                vec![S::Push, S::Wait(After::Push), S::Push, S::End(End::Pushed)],
            ),
            (
                "retries run out without a lost answer: refused, no question",
                1,
                S::Push,
                vec![refused(Network), E::Waited, refused(Network)],
                vec![S::Push, S::Wait(After::Push), S::Push, S::End(End::Refused)],
            ),
            (
                "retries run out after a lost answer: verify first",
                1,
                S::Push,
                vec![lost(), E::Waited, refused(Network), E::Landed],
                vec![
                    S::Push,
                    S::Wait(After::Push),
                    S::Push,
                    S::Verify,
                    S::End(End::Landed),
                ],
            ),
            (
                "a refusal after a lost answer is verified too",
                3,
                S::Push,
                vec![lost(), E::Waited, refused(BranchRestriction), E::NotLanded],
                vec![
                    S::Push,
                    S::Wait(After::Push),
                    S::Push,
                    S::Verify,
                    S::End(End::Refused),
                ],
            ),
            (
                "a refusal is final",
                3,
                S::Push,
                vec![refused(TwoStepVerification)],
                vec![S::Push, S::End(End::Refused)],
            ),
            (
                "RETRIES=0: one attempt",
                0,
                S::Push,
                vec![refused(NonFastForward)],
                vec![S::Push, S::End(End::Refused)],
            ),
            (
                "another branch: fetch, replay, push",
                0,
                S::Fetch,
                vec![E::Tip, E::Replayed, E::Accepted],
                vec![S::Fetch, S::Replay, S::Push, S::End(End::Pushed)],
            ),
            (
                "upstream already holds the changes",
                3,
                S::Fetch,
                vec![E::Tip, E::AlreadyUpstream],
                vec![S::Fetch, S::Replay, S::End(End::AlreadyUpstream)],
            ),
            (
                "a conflict is final",
                3,
                S::Push,
                vec![refused(NonFastForward), E::Waited, E::Tip, E::Conflict],
                vec![
                    S::Push,
                    S::Wait(After::Fetch),
                    S::Fetch,
                    S::Replay,
                    S::End(End::Refused),
                ],
            ),
            (
                "a fetch that fails on the network is retried",
                1,
                S::Fetch,
                vec![
                    E::FetchFailed { transient: true },
                    E::Waited,
                    E::FetchFailed { transient: true },
                ],
                vec![
                    S::Fetch,
                    S::Wait(After::Fetch),
                    S::Fetch,
                    S::End(End::Refused),
                ],
            ),
            (
                "a fetch refused for good",
                3,
                S::Fetch,
                vec![E::FetchFailed { transient: false }],
                vec![S::Fetch, S::End(End::Refused)],
            ),
            (
                "an existing tag stops the run",
                3,
                S::Push,
                vec![E::TagTaken],
                vec![S::Push, S::End(End::Refused)],
            ),
            (
                "an unexpected event is a bug",
                3,
                S::Replay,
                vec![E::Accepted],
                vec![S::Replay, S::End(End::Broken)],
            ),
        ];
        for (name, retries, start, events, expected) in cases {
            assert_eq!(walk(retries, start, &events), expected, "{name}");
        }
    }

    #[test]
    fn starts() {
        assert_eq!(Machine::start(Target::Checkout), Step::Push);
        assert_eq!(Machine::start(Target::OtherBranch), Step::Fetch);
        assert_eq!(Machine::start(Target::Detached), Step::Fetch);
        assert_eq!(Machine::start(Target::OtherRepository), Step::Fetch);
    }

    /// Whatever the events, the machine ends within its step limit.
    #[test]
    fn every_walk_ends() {
        use Event as E;
        let events = [
            refused(NonFastForward),
            refused(Network),
            lost(),
            E::Waited,
            E::Tip,
            E::Replayed,
            E::FetchFailed { transient: true },
        ];
        for retries in 0..4 {
            for seed in 0..200u64 {
                let mut m = Machine::new(retries);
                let mut step = Step::Push;
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut n = 0;
                while !matches!(step, Step::End(_)) {
                    // The events a step can really produce, chosen at random.
                    let e = match step {
                        Step::Push => events[rng.usize(0..3)],
                        Step::Wait(_) => E::Waited,
                        Step::Fetch => {
                            [E::Tip, E::FetchFailed { transient: true }][rng.usize(0..2)]
                        }
                        Step::Replay => E::Replayed,
                        Step::Verify => E::NotLanded,
                        Step::End(_) => unreachable!(),
                    };
                    step = m.next(step, e);
                    n += 1;
                    assert!(
                        n <= m.step_limit(),
                        "retries {retries}, seed {seed}: no end"
                    );
                }
                assert!(
                    m.attempts <= retries + 1,
                    "retries {retries}: {} attempts",
                    m.attempts
                );
            }
        }
    }
}
