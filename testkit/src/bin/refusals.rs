//! `cargo run -p testkit --bin refusals`: one real refused run per blockage
//! kind, as Markdown (the README's "When Bitbucket refuses" examples);
//! `-- --merge`: the README's ON_RESTRICTED=merge example.

fn main() {
    let bin = testkit::commit_back_binary(false).expect("build commit-back");
    if std::env::args().any(|a| a == "--merge") {
        // The README's ON_RESTRICTED=merge example.
        let shown = testkit::showcase::merge_refused(&bin);
        print!("{}", testkit::showcase::merge_markdown(&shown));
        return;
    }
    print!(
        "{}",
        testkit::showcase::markdown(&testkit::showcase::all(&bin))
    );
}
