//! Long runs speak: progress lines while a slow upload runs, none for a
//! quick run or with PROGRESS=false; every run ends with its numbers, and
//! the report's sizes agree with what the server received.

use crate::Fixture;

/// Bytes in a progress amount like `1.5 MiB` or `512 B`.
fn bytes(amount: &str) -> f64 {
    let mut parts = amount.split_whitespace();
    let value: f64 = parts.next().unwrap().parse().unwrap();
    let unit = match parts.next().unwrap() {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        u => panic!("unit {u}"),
    };
    value * unit
}

/// The amounts of the `INFO: Uploading: …` lines, in order.
fn upload_lines(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("INFO: Uploading: "))
        .filter(|l| !l.starts_with("done"))
        .map(|l| {
            let amount = l.split(',').next().unwrap_or(l);
            let amount = amount.split(" of ").next().unwrap_or(amount);
            bytes(amount.trim().trim_end_matches('.'))
        })
        .collect()
}

/// What the server received in request bodies.
fn received(f: &Fixture) -> u64 {
    f.server.requests().iter().map(|r| r.received).sum()
}

#[test]
fn a_slow_upload_shows_progress_and_the_numbers_agree_with_the_server() {
    let f = Fixture::new(Some(50));
    // 24 MiB that does not compress, read by the server at 2 MiB/s: the
    // first few MiB vanish into the connection's buffers at once (up to
    // 8 MiB on loopback), the rest moves at the server's pace for seconds.
    let content = testkit::incompressible(24 * 1024 * 1024, 21);
    std::fs::create_dir_all(f.clone.join("dist")).unwrap();
    std::fs::write(f.clone.join("dist/app.bin"), &content).unwrap();
    f.server.throttle_uploads(2 * 1024 * 1024);
    let run = f.run(&[]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    let amounts = upload_lines(&run.stderr);
    assert!(amounts.len() >= 2, "{}", run.stderr);
    // Never back, and forward overall (two lines may show the same amount
    // rounded to a tenth of a MiB).
    assert!(amounts.windows(2).all(|w| w[0] <= w[1]), "{amounts:?}");
    assert!(amounts[0] < amounts[amounts.len() - 1], "{amounts:?}");
    assert!(
        run.stderr.contains("INFO: Uploading: done, "),
        "{}",
        run.stderr
    );
    // The rate is said (a git push's total is not known in advance).
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("INFO: Uploading: ") && l.contains("/s")),
        "{}",
        run.stderr
    );

    // The numbers: what was committed, what the server received.
    let sizes = &run.report["sizes"];
    assert_eq!(sizes["files"], 1);
    assert_eq!(sizes["bytes_committed"], content.len() as u64);
    assert_eq!(sizes["bytes_sent"], received(&f), "{}", run.stdout);
    assert!(sizes["objects"].as_u64().unwrap() >= 3, "{}", run.stdout);
    let summary = run.report["summary"].as_str().unwrap();
    assert!(
        summary.contains(": 1 file, 24.0 MiB committed, ")
            && summary.contains(&format!(
                "{} sent in ",
                commit_back::progress::size(received(&f))
            )),
        "{summary}"
    );
    let timings = &run.report["timings"];
    assert_eq!(timings["push_ms"].as_array().unwrap().len(), 1);
    assert!(timings["push_ms"][0].as_u64().unwrap() >= 5000, "{timings}");
    for key in ["config_ms", "stage_ms", "commit_ms", "api_ms"] {
        assert!(timings[key].is_u64(), "{key}: {timings}");
    }
}

#[test]
fn progress_false_and_quick_runs_say_nothing() {
    let f = Fixture::new(Some(50));
    let content = testkit::incompressible(2 * 1024 * 1024, 22);
    std::fs::create_dir_all(f.clone.join("dist")).unwrap();
    std::fs::write(f.clone.join("dist/app.bin"), &content).unwrap();
    f.server.throttle_uploads(384 * 1024);
    let run = f.run(&[("PROGRESS", "false")]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert!(
        run.report["timings"]["push_ms"][0].as_u64().unwrap() >= 3000,
        "the upload was slow"
    );
    assert!(upload_lines(&run.stderr).is_empty(), "{}", run.stderr);
    assert!(!run.stderr.contains(": done, "), "{}", run.stderr);

    // A quick run (nothing throttled) prints none either, and still ends
    // with its numbers.
    let f = Fixture::new(Some(50));
    f.write("dist/ids.json", "[1]\n");
    let run = f.run(&[]);
    assert_eq!(run.status(), "pushed", "{}", run.stderr);
    assert!(upload_lines(&run.stderr).is_empty(), "{}", run.stderr);
    assert!(!run.stderr.contains(": done, "), "{}", run.stderr);
    let summary = run.report["summary"].as_str().unwrap();
    assert!(summary.contains(": 1 file, 4 B committed, "), "{summary}");
    assert_eq!(run.report["sizes"]["bytes_sent"], received(&f));
}
