//! `cargo run -p testkit --bin demo`: see `testkit::demo`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match testkit::commit_back_binary(false) {
        Ok(bin) if testkit::demo::run(&bin) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(1)
        }
    }
}
