//! Benchmark: commit and push with commit-back versus the git CLI
//! (`git add -A && git commit && git push`), same clone shape (depth 50 of an
//! upstream with a long history), same local HTTP server, in one run. Prints
//! a Markdown table: median wall time and median peak memory (max RSS of the
//! process tree, from wait4) over R runs each, and the ratio; then the floor,
//! commit-back's wall time for a run that finds nothing to commit.
//!
//! Cases: `--files 1,1000,10000,200MB,lfs:200MB,signed:1`: N small files (`signed:N`: the commit signed with an ed25519 key, git with `-S`), one file
//! of N MB of incompressible data, or one such file tracked by Git LFS
//! (uploaded to giftless behind the same server; git runs with git-lfs
//! installed in its clone, and its pre-push hook uploads).
//!
//! With the default cases (or `--chart PATH`), it also writes the chart of
//! BENCHMARKS.md (`docs/benchmarks.svg`): wall time and peak memory against
//! the number of files and against file size, log scales.
//!
//! Run: `cargo run --release -p testkit --bin bench -- [--runs 5] [--files 1,100,1000,10000,1MB,20MB,200MB,lfs:1MB,lfs:20MB,lfs:200MB] [--history 5000] [--chart PATH]`

use base64::Engine as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::{GitHttpServer, World};

const TOKEN: &str = "bench-access-token-0001";

struct Sample {
    wall: Duration,
    /// User + system CPU of the tool's processes (the server's not included):
    /// steadier than wall time on a noisy filesystem.
    cpu: Duration,
    max_rss_kb: u64,
    /// Request body bytes the server received during the run.
    sent: u64,
}

/// The baseline: git without its automatic maintenance.
const GIT_QUIET: &str = "git CLI, maintenance off";

enum Case {
    SmallFiles(usize),
    /// N small files, the commit signed with an ed25519 key (git: `-S`
    /// with gpg.format=ssh, which runs ssh-keygen).
    Signed(usize),
    BigFile {
        megabytes: usize,
    },
    /// One text-like file (log lines; compresses about 5:1).
    TextFile {
        megabytes: usize,
    },
    LfsFile {
        megabytes: usize,
    },
}

impl Case {
    fn parse(s: &str) -> Option<Case> {
        if let Some(n) = s.strip_prefix("signed:") {
            return n.parse().ok().map(Case::Signed);
        }
        if let Some(mb) = s.strip_prefix("lfs:").and_then(|s| s.strip_suffix("MB")) {
            return mb.parse().ok().map(|megabytes| Case::LfsFile { megabytes });
        }
        if let Some(mb) = s.strip_prefix("text:").and_then(|s| s.strip_suffix("MB")) {
            return mb
                .parse()
                .ok()
                .map(|megabytes| Case::TextFile { megabytes });
        }
        match s.strip_suffix("MB") {
            Some(mb) => mb.parse().ok().map(|megabytes| Case::BigFile { megabytes }),
            None => s.parse().ok().map(Case::SmallFiles),
        }
    }

    fn name(&self) -> String {
        match self {
            Case::SmallFiles(n) => format!("{n} file(s)"),
            Case::Signed(n) => format!("{n} file(s), signed (ed25519)"),
            Case::BigFile { megabytes } => format!("one {megabytes} MB file"),
            Case::TextFile { megabytes } => format!("one {megabytes} MB text file"),
            Case::LfsFile { megabytes } => format!("one {megabytes} MB file in LFS"),
        }
    }

    fn generate(&self, dir: &Path, seed: usize) {
        match self {
            Case::SmallFiles(files) | Case::Signed(files) => {
                let gen_dir = dir.join("generated");
                for i in 0..*files {
                    let sub = gen_dir.join(format!("{:03}", i % 100));
                    if i < 100 {
                        std::fs::create_dir_all(&sub).unwrap();
                    }
                    std::fs::write(
                        sub.join(format!("item-{i}.json")),
                        format!("{{\"id\": {i}, \"run\": {seed}}}\n"),
                    )
                    .unwrap();
                }
            }
            Case::BigFile { megabytes } => {
                // Incompressible, so the pack really is this big.
                write_incompressible(&dir.join("generated/blob.bin"), *megabytes, seed);
            }
            Case::TextFile { megabytes } => {
                write_text(&dir.join("generated/build.log"), *megabytes, seed);
            }
            Case::LfsFile { megabytes } => {
                // `*.lfs` is tracked by LFS in the upstream's .gitattributes.
                write_incompressible(&dir.join("generated/blob.lfs"), *megabytes, seed);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    // `--tools commit-back` measures commit-back alone (ratios are then
    // against itself): for profiling, where git's runs only cost time.
    let tools: Option<String> = arg("--tools");
    let runs: usize = arg("--runs").and_then(|v| v.parse().ok()).unwrap_or(5);
    let default_cases = arg("--files").is_none();
    let cases: Vec<Case> = arg("--files")
        .unwrap_or_else(|| DEFAULT_CASES.into())
        .split(',')
        .filter_map(Case::parse)
        .collect();
    let chart_path = arg("--chart").map(std::path::PathBuf::from).or_else(|| {
        default_cases.then(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace")
                .join("docs/benchmarks.svg")
        })
    });
    // (case, tool, wall ms, peak RSS MB) for the chart.
    let mut medians: Vec<(&Case, &str, f64, f64)> = Vec::new();
    // (tool, files, wall ms) of the small-file cases.
    let mut growth: Vec<(&str, f64, f64)> = Vec::new();
    let history: usize = arg("--history")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let bin = testkit::commit_back_binary(true).expect("build commit-back");

    let world = World::new();
    let bare = world.upstream("bench/repo", history);
    // `*.lfs` goes to Git LFS (only the LFS case writes such a file).
    let seed_clone = world.path().join("attributes");
    testkit::git(
        world.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            seed_clone.to_str().unwrap(),
        ],
    );
    testkit::shell(
        &seed_clone,
        "echo '*.lfs filter=lfs diff=lfs merge=lfs -text' > .gitattributes && git add .gitattributes && git commit -qm lfs && git push -q origin HEAD:main",
    );
    let server = GitHttpServer::start(&world.root());
    server.account("x-token-auth", TOKEN, "bench");
    let lfs_server = cases
        .iter()
        .any(|c| matches!(c, Case::LfsFile { .. }))
        .then(|| testkit::LfsServer::start(&world.path().join("lfs")));
    if let Some(lfs) = &lfs_server {
        server.serve_lfs(lfs);
    }
    let url = server.url("bench/repo.git");
    // The signing key of the `signed:N` cases.
    let signing_key = world.path().join("signing_key");
    if cases.iter().any(|c| matches!(c, Case::Signed(_))) {
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&signing_key)
            .status()
            .expect("ssh-keygen");
        assert!(made.success());
    }
    let signing_key_b64 = std::fs::read_to_string(&signing_key)
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k))
        .unwrap_or_default();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-token-auth:{TOKEN}"));

    println!(
        "commit-back ({}) vs {}; upstream of {history} commits, depth-50 clones, local HTTP server; median of {runs} runs",
        bin.display(),
        git_version()
    );
    println!();
    println!(
        "Ratios are against git with maintenance off (`-c maintenance.auto=false -c gc.auto=0`): at 10,000 loose objects a default `git commit` starts a background repack that competes with its own push."
    );
    println!();
    println!(
        "| case | tool | wall ms | CPU ms | peak RSS MB | MB sent | wall ratio | CPU ratio | RSS ratio | sent ratio |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    // Every run starts from the same upstream tip: otherwise each run's push
    // (a 200 MB blob, say) would be in the next run's clone.
    let base = testkit::git(&bare, &["rev-parse", "main"]);
    let mut n_clone = 0;
    for case in &cases {
        let mut results: Vec<(&str, Vec<Sample>)> = vec![
            ("commit-back", vec![]),
            (GIT_QUIET, vec![]),
            ("git CLI, default", vec![]),
        ];
        if let Some(only) = &tools {
            results.retain(|(tool, _)| only.split(',').any(|t| tool.starts_with(t.trim())));
        }
        for _ in 0..runs {
            for (tool, samples) in results.iter_mut() {
                n_clone += 1;
                testkit::git(&bare, &["update-ref", "refs/heads/main", &base]);
                let clone =
                    world.pipelines_clone(&bare, &format!("c{n_clone}"), "main", Some(50), &url);
                case.generate(&clone, n_clone);
                let mut cmd = if *tool == "commit-back" {
                    let mut cmd = Command::new(&bin);
                    cmd.env_clear().envs([
                        ("BRANCH", "main"),
                        ("REPOSITORY", "bench/repo"),
                        ("REMOTE_URL", url.as_str()),
                        ("BITBUCKET_ACCESS_TOKEN", TOKEN),
                        ("NO_COLOR", "1"),
                    ]);
                    if matches!(case, Case::Signed(_)) {
                        cmd.env("SIGNING_KEY", &signing_key_b64);
                    }
                    cmd
                } else {
                    if matches!(case, Case::LfsFile { .. }) {
                        // git-lfs as `git lfs install` sets it up (filters
                        // and the pre-push hook); giftless has no locks API.
                        testkit::shell(
                            &clone,
                            &format!(
                                "git lfs install --local >/dev/null && git config lfs.{url}/info/lfs.locksverify false"
                            ),
                        );
                    }
                    // The credential as a header on every request; with
                    // git-lfs, from a credential helper instead (git-lfs
                    // would put an extra header on the upload hrefs too, over
                    // the LFS server's own authorization).
                    let mut config: Vec<(&str, String)> = Vec::new();
                    config.push(if matches!(case, Case::LfsFile { .. }) {
                        (
                            "credential.helper",
                            format!(
                                "!f() {{ echo username=x-token-auth; echo password={TOKEN}; }}; f"
                            ),
                        )
                    } else {
                        ("http.extraHeader", format!("Authorization: Basic {basic}"))
                    });
                    if *tool == GIT_QUIET {
                        config.push(("maintenance.auto", "false".into()));
                        config.push(("gc.auto", "0".into()));
                    }
                    let signed = matches!(case, Case::Signed(_));
                    if signed {
                        config.push(("gpg.format", "ssh".into()));
                        config.push((
                            "user.signingKey",
                            signing_key.to_string_lossy().into_owned(),
                        ));
                    }
                    let script = format!(
                        "git add -A && git commit -q {}-m 'Update build artifacts [skip ci]' && git push -q origin HEAD:main",
                        if signed { "-S " } else { "" }
                    );
                    let mut sh = Command::new("sh");
                    for (i, (key, value)) in config.iter().enumerate() {
                        sh.env(format!("GIT_CONFIG_KEY_{i}"), key)
                            .env(format!("GIT_CONFIG_VALUE_{i}"), value);
                    }
                    sh.args(["-c", &script])
                        .env("GIT_CONFIG_NOSYSTEM", "1")
                        .env("GIT_CONFIG_GLOBAL", "/dev/null")
                        .env("GIT_CONFIG_COUNT", config.len().to_string())
                        .env("GIT_TERMINAL_PROMPT", "0");
                    sh
                };
                cmd.current_dir(&clone);
                let before = server.requests().len();
                let mut sample = measure(&mut cmd);
                sample.sent = server.requests()[before..].iter().map(|r| r.received).sum();
                samples.push(sample);
                let _ = std::fs::remove_dir_all(&clone);
                if let Some(lfs) = &lfs_server {
                    let _ = std::fs::remove_dir_all(&lfs.storage);
                }
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let med = |s: &[Sample]| {
            [
                median(s.iter().map(|x| ms(x.wall)).collect()),
                median(s.iter().map(|x| ms(x.cpu)).collect()),
                median(s.iter().map(|x| x.max_rss_kb as f64 / 1024.0).collect()),
                median(s.iter().map(|x| x.sent as f64 / 1e6).collect()),
            ]
        };
        let baseline = med(&results
            .iter()
            .find(|(tool, _)| *tool == GIT_QUIET)
            .unwrap_or(&results[0])
            .1);
        let name = case.name();
        for (tool, samples) in &results {
            let m = med(samples);
            let chart_name = match *tool {
                "commit-back" => Some("commit-back"),
                GIT_QUIET => Some("git"),
                _ => None,
            };
            if let Some(chart_name) = chart_name {
                medians.push((case, chart_name, m[0], m[2]));
            }
            if let Case::SmallFiles(n) = case {
                growth.push((*tool, *n as f64, m[0]));
            }
            println!(
                "| {name} | {tool} | {:.1} | {:.1} | {:.1} | {:.3} | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
                m[0],
                m[1],
                m[2],
                m[3],
                m[0] / baseline[0],
                m[1] / baseline[1],
                m[2] / baseline[2],
                m[3] / baseline[3],
            );
        }
    }
    // How wall time grows with the number of small files: the exponent of
    // a power law fitted (least squares, log-log) through the cases of
    // 1,000 files or more.
    println!();
    for (tool, _) in [
        ("commit-back", ()),
        (GIT_QUIET, ()),
        ("git CLI, default", ()),
    ] {
        let points: Vec<(f64, f64)> = growth
            .iter()
            .filter(|(t, n, _)| *t == tool && *n >= 1000.0)
            .map(|(_, n, wall)| (n.ln(), wall.ln()))
            .collect();
        if points.len() >= 2 {
            let k = points.len() as f64;
            let (sx, sy) = points
                .iter()
                .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
            let (mx, my) = (sx / k, sy / k);
            let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
                (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
            });
            println!(
                "growth with the number of files ({} points from 1,000 up): {tool} wall time ~ N^{:.2}",
                points.len(),
                num / den
            );
        }
    }

    // The floor: a run that finds nothing to commit (no network at all),
    // in a clone of the upstream as it was before the cases pushed to it
    // (not of what the last case left, which may hold 100,000 files).
    testkit::git(&bare, &["update-ref", "refs/heads/main", &base]);
    let clone = world.pipelines_clone(&bare, "floor", "main", Some(50), &url);
    let floor: Vec<f64> = (0..runs.max(10))
        .map(|_| {
            let mut cmd = Command::new(&bin);
            cmd.current_dir(&clone).env_clear().envs([
                ("BRANCH", "main"),
                ("REPOSITORY", "bench/repo"),
                ("BITBUCKET_ACCESS_TOKEN", TOKEN),
                ("NO_COLOR", "1"),
            ]);
            measure(&mut cmd).wall.as_secs_f64() * 1000.0
        })
        .collect();
    println!();
    println!(
        "nothing_to_commit floor (bare binary, median of {}): {:.1} ms",
        floor.len(),
        median(floor)
    );
    if let Some(path) = chart_path {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, chart(&medians, runs, &git_version())).unwrap();
        println!("chart written to {}", path.display());
    }
    // What this process adds to every peak RSS above (see write_incompressible).
    let spawn_floor = measure(&mut Command::new("true"));
    println!(
        "peak RSS of `true` spawned the same way: {:.1} MB",
        spawn_floor.max_rss_kb as f64 / 1024.0
    );
}

const DEFAULT_CASES: &str = "1,100,1000,10000,1MB,20MB,200MB,lfs:1MB,lfs:20MB,lfs:200MB";

/// Wall time and peak memory against the number of files and against file
/// size (plain and in LFS), commit-back beside git.
fn chart(medians: &[(&Case, &str, f64, f64)], runs: usize, git: &str) -> String {
    use testkit::chart::{Panel, Series};
    let series = |name: &str,
                  tool: &str,
                  x: &dyn Fn(&Case) -> Option<f64>,
                  y: &dyn Fn(f64, f64) -> f64| Series {
        name: name.to_owned(),
        points: medians
            .iter()
            .filter(|(_, t, ..)| *t == tool)
            .filter_map(|(case, _, wall, rss)| x(case).map(|x| (x, y(*wall, *rss))))
            .collect(),
    };
    let files = |c: &Case| match c {
        Case::SmallFiles(n) => Some(*n as f64),
        _ => None,
    };
    let size = |c: &Case| match c {
        Case::BigFile { megabytes } => Some(*megabytes as f64),
        _ => None,
    };
    let lfs = |c: &Case| match c {
        Case::LfsFile { megabytes } => Some(*megabytes as f64),
        _ => None,
    };
    let wall = |w: f64, _| w;
    let rss = |_, r: f64| r;
    let panel = |title: &str,
                 x_label: &str,
                 y_label: &str,
                 x: &dyn Fn(&Case) -> Option<f64>,
                 y: &dyn Fn(f64, f64) -> f64,
                 with_lfs: bool| {
        let mut s = vec![
            series("commit-back", "commit-back", x, y),
            series("git CLI", "git", x, y),
        ];
        if with_lfs {
            s.push(series("commit-back, Git LFS", "commit-back", &lfs, y));
            s.push(series("git + git-lfs", "git", &lfs, y));
        }
        s.retain(|s| !s.points.is_empty());
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: s,
        }
    };
    let panels = [
        panel(
            "Wall time against files",
            "files (small)",
            "ms",
            &files,
            &wall,
            false,
        ),
        panel(
            "Peak memory against files",
            "files (small)",
            "MB",
            &files,
            &rss,
            false,
        ),
        panel(
            "Wall time against file size",
            "one file, MB",
            "ms",
            &size,
            &wall,
            true,
        ),
        panel(
            "Peak memory against file size",
            "one file, MB",
            "MB",
            &size,
            &rss,
            true,
        ),
    ];
    testkit::chart::svg(
        &format!("commit-back vs {git}: commit and push, median of {runs} runs (log scales)"),
        &panels,
        2,
    )
}

/// `megabytes` MiB of incompressible data, written 1 MiB at a time. This
/// process must stay small: a child's peak RSS, as wait4 reports it,
/// includes what this process held when it spawned the child (the kernel
/// records the old address space's high-water mark at exec).
fn write_incompressible(path: &Path, megabytes: usize, seed: usize) {
    use std::io::Write as _;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::fs::File::create(path).unwrap();
    for piece in 0..megabytes {
        let data = testkit::incompressible(1 << 20, (seed * 1_000_000 + piece) as u64);
        file.write_all(&data).unwrap();
    }
    file.flush().unwrap();
}

/// `megabytes` MiB of log lines (text-like: compresses about 5:1 with
/// zlib), written 1 MiB at a time.
fn write_text(path: &Path, megabytes: usize, seed: usize) {
    use std::io::Write as _;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let words = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    ];
    let paths = [
        "/api/v1/items",
        "/api/v1/users",
        "/health",
        "/api/v2/orders",
    ];
    let mut written = 0usize;
    let mut i = 0u64;
    while written < megabytes << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "2026-12-02T12:{:02}:{:02}.{:03}Z {} id={:08x} user={} path={}/{} status={} latency_ms={}\n",
            i / 60_000 % 60,
            i / 1000 % 60,
            i % 1000,
            ["INFO", "WARN", "DEBUG"][(x % 3) as usize],
            x as u32,
            words[(x >> 8) as usize % words.len()],
            paths[(x >> 16) as usize % paths.len()],
            (x >> 20) % 99_999,
            [200, 200, 200, 404, 500][(x >> 40) as usize % 5],
            (x >> 44) % 5000
        );
        let line = &line.as_bytes()[..line.len().min((megabytes << 20) - written)];
        file.write_all(line).unwrap();
        written += line.len();
        i += 1;
    }
    file.flush().unwrap();
}

/// Runs to completion; wall time and the peak RSS of the process and the
/// children it waited for (Linux wait4 rusage).
#[allow(clippy::zombie_processes)] // the child is reaped by wait4 below
fn measure(cmd: &mut Command) -> Sample {
    // stderr is kept aside, to say why a benchmarked command failed.
    let errors = tempfile::tempfile().expect("temporary file");
    cmd.stdout(std::process::Stdio::null())
        .stderr(errors.try_clone().expect("temporary file"));
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert!(r > 0, "wait4 failed");
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        use std::io::{Read as _, Seek as _};
        let mut errors = errors;
        let mut text = String::new();
        let _ = errors.rewind();
        let _ = errors.read_to_string(&mut text);
        panic!("benchmarked command failed: {cmd:?}\n{text}");
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss as u64,
        sent: 0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn git_version() -> String {
    let out = Command::new("git").arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
