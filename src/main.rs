//! Reads the environment, runs, prints the report, exits. No decisions here.

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    commit_back::memory::tune_allocator();
    // A panic message could quote a value; never print one.
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "✖ commit-back crashed{place}; please report it (the message is withheld because it could contain a secret)"
        );
    }));
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args.as_slice() {
        [a] if a == "--help" || a == "-h" => {
            print!("{}", commit_back::help::text());
            return ExitCode::SUCCESS;
        }
        [a] if a == "--version" || a == "-V" => {
            println!("commit-back {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(_) => std::path::PathBuf::from("."),
    };
    let env = commit_back::run::Environment {
        vars: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
        args,
        cwd,
    };
    let finished = commit_back::run::run(env);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", finished.json);
    let _ = out.flush();
    ExitCode::from(finished.report.exit_code())
}
