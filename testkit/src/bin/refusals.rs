//! `cargo run -p testkit --bin refusals`: one real refused run per blockage
//! kind, as Markdown (the README's "When Bitbucket refuses" examples).

fn main() {
    let bin = testkit::commit_back_binary(false).expect("build commit-back");
    print!(
        "{}",
        testkit::showcase::markdown(&testkit::showcase::all(&bin))
    );
}
