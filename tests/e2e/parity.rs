//! Git is the oracle for what is committed (README "What is committed").
//!
//! Each case makes one upstream from its `base` shell, clones it twice as
//! Pipelines does, runs the same `change` shell in both clones, then:
//! - in the first, `git add -A [--force] -- FILES` and `git commit` (with
//!   git-lfs as the `lfs` filter where a case configures it);
//! - in the second, the real commit-back binary, pushing to a real server.
//!
//! The verdicts must agree: the same tree upstream (and the same
//! `git status` left behind), or nothing to commit in both, or a refusal by
//! both in which commit-back changed nothing. Where commit-back refuses on
//! purpose although git would commit (an external filter it cannot run,
//! conflict markers), the case says so with [`Case::refused`], and the
//! refusal must name the reason and change nothing.
//!
//! A case is one line of shell for the upstream and one for the change.

use crate::{Fixture, TOKEN};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use testkit::{GitHttpServer, World, git, git_command, shell};

/// Configures git-lfs as the `lfs` filter in a clone (what `git lfs install
/// --local` writes, without its hooks).
const LFS: &str = "git config filter.lfs.clean 'git-lfs clean -- %f'; \
     git config filter.lfs.smudge 'git-lfs smudge -- %f'; \
     git config filter.lfs.process 'git-lfs filter-process'; \
     git config filter.lfs.required true";

/// A clean filter git runs and commit-back cannot (reverses each line).
const REV: &str = "git config filter.rev.clean rev; git config filter.rev.smudge rev";

struct Case {
    base: String,
    change: String,
    files: &'static str,
    include_ignored: bool,
    /// Where both tools run, relative to the clone (a linked worktree).
    dir: &'static str,
    /// commit-back refuses on purpose; the error names this.
    refusal: Option<&'static str>,
    /// DRY_RUN=true: the same verdict, and the report's files are git's.
    dry_run: bool,
    /// A real LFS server (giftless) behind the git server.
    lfs: bool,
}

fn case(base: &str, change: &str) -> Case {
    Case {
        base: base.to_owned(),
        change: change.to_owned(),
        files: ".",
        include_ignored: false,
        dir: ".",
        refusal: None,
        dry_run: false,
        lfs: false,
    }
}

/// What git did in its clone.
#[derive(Debug, PartialEq)]
enum Verdict {
    Tree(String),
    Nothing,
    Refused(String),
}

impl Case {
    fn files(mut self, files: &'static str) -> Case {
        self.files = files;
        self
    }

    fn include_ignored(mut self) -> Case {
        self.include_ignored = true;
        self
    }

    fn in_dir(mut self, dir: &'static str) -> Case {
        self.dir = dir;
        self
    }

    fn dry_run(mut self) -> Case {
        self.dry_run = true;
        self
    }

    fn with_lfs(mut self) -> Case {
        self.lfs = true;
        self
    }

    fn refused(mut self, why: &'static str) -> Case {
        self.refusal = Some(why);
        self
    }

    fn check(self) {
        let world = World::new();
        let bare = world.upstream("ws/repo", 1);
        let seed = world.path().join("seed");
        git(
            world.path(),
            &[
                "clone",
                "-q",
                bare.to_str().unwrap(),
                seed.to_str().unwrap(),
            ],
        );
        shell(&seed, &self.base);
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "--allow-empty", "-m", "base"]);
        git(&seed, &["push", "-q", "--no-verify", "origin", "main"]);

        let server = GitHttpServer::start(&world.root());
        server.account("x-token-auth", TOKEN, "token-user");
        let lfs = self
            .lfs
            .then(|| testkit::LfsServer::start(&world.path().join("lfs")));
        if let Some(lfs) = &lfs {
            server.serve_lfs(lfs);
        }
        let url = server.url("ws/repo.git");
        let theirs = world.pipelines_clone(&bare, "theirs", "main", None, &url);
        let ours = world.pipelines_clone(&bare, "ours", "main", None, &url);
        for clone in [&theirs, &ours] {
            shell(clone, &self.change);
        }
        let verdict = self.by_git(&theirs.join(self.dir));

        let dir = ours.join(self.dir);
        let head_before = head(&dir);
        let index_before = std::fs::read(git_path(&dir, "index")).unwrap_or_default();
        let tree_before = working_tree(&dir);
        let objects_before = testkit::walk(&git_path(&dir, "objects"));
        let upstream_before = git(&bare, &["rev-parse", "main"]);
        let fixture = Fixture {
            world,
            server,
            bare,
            clone: ours.clone(),
        };
        let ignored = if self.include_ignored { "true" } else { "" };
        let dry_run = if self.dry_run { "true" } else { "" };
        let run = fixture.run_in(
            &dir,
            &[
                ("FILES", self.files),
                ("INCLUDE_IGNORED", ignored),
                ("DRY_RUN", dry_run),
            ],
        );
        let said = format!(
            "git: {verdict:?}\ncommit-back exit {}:\n{}\n{}",
            run.code, run.stderr, run.stdout
        );
        let refused_unchanged = || {
            assert_eq!(run.code, 2, "{said}");
            assert_eq!(run.status(), "invalid_configuration", "{said}");
            assert_eq!(head(&dir), head_before, "HEAD moved\n{said}");
            assert!(
                std::fs::read(git_path(&dir, "index")).unwrap_or_default() == index_before,
                "the index changed\n{said}"
            );
            assert!(working_tree(&dir) == tree_before, "files changed\n{said}");
            assert_eq!(
                testkit::walk(&git_path(&dir, "objects")),
                objects_before,
                "objects were written\n{said}"
            );
            assert_eq!(git(&fixture.bare, &["rev-parse", "main"]), upstream_before);
        };
        if let Some(why) = self.refusal {
            refused_unchanged();
            assert!(
                run.stdout.contains(why),
                "the error should name {why}\n{said}"
            );
            assert!(
                run.stderr.lines().any(|l| l.starts_with("ERROR: FILES: ")),
                "one error line per problem\n{said}"
            );
            return;
        }
        match verdict {
            Verdict::Tree(_) if self.dry_run => {
                assert_eq!(run.code, 0, "{said}");
                assert_eq!(run.status(), "dry_run", "{said}");
                let files = git(
                    &theirs.join(self.dir),
                    &["diff", "--no-renames", "--name-only", "HEAD^", "HEAD"],
                );
                let reported: Vec<&str> = run.report["commit"]["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect();
                assert_eq!(reported.join("\n"), files, "{said}");
                assert_eq!(head(&dir), head_before);
                assert!(
                    std::fs::read(git_path(&dir, "index")).unwrap_or_default() == index_before,
                    "a dry run changed the index\n{said}"
                );
                assert_eq!(git(&fixture.bare, &["rev-parse", "main"]), upstream_before);
            }
            Verdict::Tree(tree) => {
                assert_eq!(run.code, 0, "{said}");
                assert_eq!(run.status(), "pushed", "{said}");
                fixture.assert_landed(&run);
                let pushed = git(&fixture.bare, &["rev-parse", "main^{tree}"]);
                if pushed != tree {
                    panic!(
                        "trees differ\n{}\n{said}",
                        tree_diff(&fixture.bare, &tree, &pushed)
                    );
                }
                assert_eq!(head(&dir), git(&fixture.bare, &["rev-parse", "main"]));
                // Both indexes describe their working trees the same way.
                assert_eq!(
                    status(&theirs.join(self.dir)),
                    status(&dir),
                    "git status after the commit\n{said}"
                );
            }
            Verdict::Nothing => {
                assert_eq!(run.code, 0, "{said}");
                assert_eq!(run.status(), "nothing_to_commit", "{said}");
                assert_eq!(head(&dir), head_before);
                assert_eq!(git(&fixture.bare, &["rev-parse", "main"]), upstream_before);
            }
            Verdict::Refused(_) => refused_unchanged(),
        }
    }

    /// `git add -A -- FILES`, then what `git commit` would do.
    fn by_git(&self, dir: &Path) -> Verdict {
        let mut add = git_command(dir);
        add.args(["add", "-A"]);
        if self.include_ignored {
            add.arg("--force");
        }
        add.arg("--").args(self.files.split_whitespace());
        let out = add.output().unwrap();
        if !out.status.success() {
            return Verdict::Refused(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let out = git_command(dir).arg("write-tree").output().unwrap();
        if !out.status.success() {
            return Verdict::Refused(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let tree = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if tree == git(dir, &["rev-parse", "HEAD^{tree}"]) {
            return Verdict::Nothing;
        }
        git(dir, &["commit", "-q", "--no-verify", "-m", "artifacts"]);
        Verdict::Tree(tree)
    }
}

fn head(dir: &Path) -> String {
    git(dir, &["rev-parse", "HEAD"])
}

fn git_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(git(dir, &["rev-parse", "--git-path", name]))
}

fn status(dir: &Path) -> String {
    git(dir, &["status", "--porcelain", "--untracked-files=all"])
}

/// Every file outside `.git` with its bytes (and every symlink's target).
fn working_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if e.file_name() == ".git" {
                continue;
            } else if t.is_dir() {
                stack.push(p);
            } else if t.is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(p, target.into_os_string().into_encoded_bytes());
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p, bytes);
            }
        }
    }
    out
}

fn tree_diff(bare: &Path, expected: &str, got: &str) -> String {
    let list = |t: &str| git(bare, &["ls-tree", "-r", "--full-tree", t]);
    let (a, b) = (list(expected), list(got));
    let only = |x: &str, y: &str| {
        x.lines()
            .filter(|l| !y.lines().any(|m| m == *l))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "only in git's tree:\n{}\nonly in commit-back's:\n{}",
        only(&a, &b),
        only(&b, &a)
    )
}

// Files: new, modified, deleted, renamed; FILES narrowing what is staged.

#[test]
fn new_modified_deleted() {
    case(
        "echo a > a.txt; echo b > b.txt; mkdir d; echo c > d/c.txt",
        "echo A > a.txt; rm b.txt; echo n > d/new.txt; mkdir -p e/f; echo g > e/f/g",
    )
    .check();
}

#[test]
fn dry_run_reports_what_git_would_commit() {
    case(
        "echo a > a.txt; echo b > b.txt; echo '*.enc filter=git-crypt' > .gitattributes",
        "echo A > a.txt; rm b.txt; echo n > new.txt; ln -s a.txt link",
    )
    .dry_run()
    .check();
    case(
        "echo a > a",
        "echo '*.enc filter=git-crypt' > .gitattributes; echo s > s.enc",
    )
    .dry_run()
    .refused("filter=git-crypt")
    .check();
}

#[test]
fn renamed() {
    case("echo content > old.txt", "mv old.txt new.txt").check();
}

#[test]
fn files_glob_and_directory() {
    let base = "mkdir gen src; echo 1 > gen/a.json; echo s > src/s.c";
    let change = "echo 2 > gen/a.json; echo 3 > gen/b.json; echo t > src/s.c; echo x > gen/c.txt";
    case(base, change).files("gen/*.json").check();
    case(base, change).files("gen").check();
    case(base, change).files("src/s.c gen/b.json").check();
}

#[test]
fn nothing_changed() {
    case("echo a > a.txt", "true").check();
}

#[test]
fn touched_only() {
    case("echo a > a.txt", "touch -m -d @1000000000 a.txt").check();
}

#[test]
fn racily_clean() {
    // Same size, same mtime as the index: only the content tells.
    case(
        "echo aaa > a.txt",
        "echo bbb > a.txt; touch -r .git/index a.txt",
    )
    .check();
}

#[test]
fn empty_directories() {
    case("echo a > a.txt", "mkdir -p empty/deeper").check();
}

#[test]
fn directory_replaced_by_file_and_back() {
    case(
        "mkdir d; echo x > d/x; echo f > f",
        "rm -r d; echo now-file > d; rm f; mkdir f; echo in > f/in",
    )
    .check();
}

// Modes and symlinks.

#[test]
fn executable_bits() {
    let base = "printf '#!/bin/sh\\n' > run.sh; chmod +x run.sh; echo x > plain.sh";
    let change = "chmod -x run.sh; chmod +x plain.sh; echo new > new.sh; chmod 755 new.sh";
    case(base, change).check();
    case(base, &format!("git config core.fileMode false; {change}")).check();
}

#[test]
fn symlinks() {
    let base = "echo a > a; echo b > b; ln -s a link; echo f > f";
    for change in [
        "ln -s b new-link",
        "ln -sfn b link",
        "rm link; echo file > link",
        "rm f; ln -s a f",
        "ln -s missing dangling",
    ] {
        case(base, change).check();
        case(base, &format!("git config core.fileMode false; {change}")).check();
    }
}

#[test]
fn symlinks_off() {
    // core.symlinks=false: git checks a symlink out as a file holding its
    // target, and keeps the entry a symlink when that file changes.
    let base = "echo a > a; ln -s a link";
    let off = "git config core.symlinks false; rm link; git checkout -- link";
    case(base, &format!("{off}; printf b > link")).check();
    case(base, &format!("{off}; ln -s a new-link")).check();
    case(base, &format!("{off}; echo c > c")).check();
}

#[test]
fn gitlinks() {
    let base = "git init -q sub; git -C sub commit -q --allow-empty -m s; echo x > x";
    let moved = "rmdir sub; git init -q sub; git -C sub commit -q --allow-empty -m moved";
    case(base, moved).check();
    case(base, "rmdir sub; echo file > sub").check();
    case(
        base,
        "git config core.fileMode false; rmdir sub; echo file > sub",
    )
    .check();
}

#[test]
fn untracked_nested_repository() {
    case(
        "echo x > x",
        "git init -q nested; echo n > nested/f; git -C nested add f; git -C nested commit -q -m n",
    )
    .check();
    // Without a commit git refuses to add it.
    case("echo x > x", "git init -q nested; echo n > nested/f").check();
}

// Sparse checkouts and flags that hide entries.

const SPARSE_BASE: &str = "mkdir app docs; echo a > app/a; echo d > docs/d; echo r > root.txt";

#[test]
fn sparse_cone_inside() {
    case(
        SPARSE_BASE,
        "git sparse-checkout set app; echo n > app/new; echo r2 > root.txt; rm app/a",
    )
    .check();
}

#[test]
fn sparse_cone_new_file_outside() {
    case(
        SPARSE_BASE,
        "git sparse-checkout set app; echo n > app/new; mkdir -p docs; echo o > docs/out.txt",
    )
    .check();
}

#[test]
fn sparse_cone_tracked_file_outside_written() {
    case(
        SPARSE_BASE,
        "git sparse-checkout set app; echo n > app/new; mkdir -p docs; echo changed > docs/d",
    )
    .check();
}

#[test]
fn sparse_cone_files_narrowed_to_the_cone() {
    case(
        SPARSE_BASE,
        "git sparse-checkout set app; echo n > app/new; mkdir -p docs; echo o > docs/out.txt",
    )
    .files("app")
    .check();
}

#[test]
fn sparse_nested_cone_with_unusual_names() {
    case(
        "mkdir -p app/sub app/other 'a b' 'we*rd' weird; echo 1 > app/sub/s; echo 2 > app/other/o; \
         echo 3 > 'a b/c'; echo 4 > 'we*rd/w'; echo 5 > weird/w; echo 6 > app/top",
        "git sparse-checkout set --skip-checks app/sub 'a b' 'we*rd'; echo n > app/new; mkdir -p app/sub/deep; \
         echo z > app/sub/deep/z; echo c > 'a b/new'; echo w > 'we*rd/new'; echo t > top.txt",
    )
    .check();
    case(
        "mkdir -p app/sub app/other; echo 1 > app/sub/s; echo 2 > app/other/o",
        "git sparse-checkout set app/sub; mkdir -p app/other; echo n > app/other/new",
    )
    .check();
}

#[test]
fn sparse_tracked_file_outside_without_its_skip_worktree_bit() {
    case(
        SPARSE_BASE,
        "git sparse-checkout set app; mkdir -p docs; echo x > docs/d; \
         git update-index --no-skip-worktree docs/d; echo n > app/new",
    )
    .check();
}

#[test]
fn sparse_non_cone() {
    case(
        SPARSE_BASE,
        "git sparse-checkout set --no-cone '/app/' '*.txt'; echo n > app/new; echo t > x.txt",
    )
    .refused("non-cone")
    .check();
}

#[test]
fn sparse_index() {
    case(
        SPARSE_BASE,
        "git sparse-checkout set --sparse-index app; echo n > app/new",
    )
    .refused("sparse index")
    .check();
}

#[test]
fn skip_worktree_and_assume_unchanged() {
    case(
        "echo a > a.txt; echo b > b.txt; echo c > c.txt",
        "git update-index --skip-worktree a.txt b.txt; git update-index --assume-unchanged c.txt; \
         echo A > a.txt; rm b.txt; echo C > c.txt; echo n > new.txt",
    )
    .check();
}

// Attributes and line endings.

#[test]
fn attributes() {
    let base = "printf '*.txt text\\n*.crlf eol=crlf\\n*.lf eol=lf\\n*.raw -text\\n*.bin binary\\n*.id ident\\n*.auto text=auto\\n' > .gitattributes";
    let change = "printf 'a\\r\\n' > a.txt; printf 'b\\r\\n' > b.crlf; printf 'c\\r\\n' > c.lf; \
         printf 'd\\r\\n' > d.raw; printf 'e\\r\\n\\000' > e.bin; printf '$Id: old $\\r\\n' > f.id; \
         printf 'g\\r\\nh\\r\\n' > g.auto; printf 'x\\r\\n' > plain";
    case(base, change).check();
    case(base, &format!("git config core.autocrlf true; {change}")).check();
}

#[test]
fn autocrlf() {
    let change =
        "printf 'a\\r\\nb\\n' > mixed.txt; printf 'x\\r\\n' > crlf.txt; printf 'y\\n' > lf.txt";
    for value in ["true", "input"] {
        case(
            "echo a > a",
            &format!("git config core.autocrlf {value}; {change}"),
        )
        .check();
    }
}

#[test]
fn attributes_of_a_linked_worktree_live_in_the_common_dir() {
    // Detached, as CI checks out one commit: the branch pushed to (main) is
    // checked out in the main worktree, and only a checkout of it follows.
    case(
        "echo x > keep",
        "printf '*.txt text\\n' > .git/info/attributes; git worktree add -q --detach wt; \
         printf 'a\\r\\nb\\r\\n' > wt/crlf.txt; echo p > wt/plain",
    )
    .in_dir("wt")
    .check();
}

#[test]
fn ignore_case() {
    case(
        "echo a > README.md; mkdir Docs; echo d > Docs/a",
        "git config core.ignoreCase true; echo b > README.md; echo c > readme.md; echo e > docs-new",
    )
    .check();
}

// Names.

#[test]
fn unusual_names() {
    case(
        "echo a > a",
        "printf 1 > 'with space.txt'; printf 2 > \"$(printf 'caf\\303\\251')\"; \
         printf 3 > \"$(printf 'cafe\\314\\201')\"; printf 4 > ./-dash; printf 5 > 'quo\"te'; \
         printf 6 > \"$(printf 'new\\nline')\"; printf 7 > 'back\\slash'; printf 8 > '*star'",
    )
    .check();
}

// Ignored files.

#[test]
fn ignored_files() {
    let base = "printf '*.log\\n!keep.log\\nbuild/\\n' > .gitignore; mkdir sub; \
         printf '*.tmp\\n' > sub/.gitignore; echo s > sub/s";
    let change = "echo 1 > a.log; echo 2 > keep.log; mkdir build; echo 3 > build/x; \
         echo 4 > sub/y.tmp; echo 5 > sub/z.txt";
    case(base, change).check();
    case(base, change).include_ignored().check();
    case(base, change)
        .files("build/x sub")
        .include_ignored()
        .check();
}

// States in which git would not commit.

const CONFLICT: &str = "git checkout -q -b other; echo theirs > c.txt; git commit -qam t; \
     git checkout -q main; echo ours > c.txt; git commit -qam o; \
     git merge -q other >/dev/null 2>&1 || true; echo gen > gen.txt";

#[test]
fn unmerged_entries_outside_files() {
    case("echo base > c.txt", CONFLICT).files("gen.txt").check();
}

#[test]
fn unmerged_entries_inside_files() {
    // git add -A would stage the conflict markers; commit-back will not.
    case("echo base > c.txt", CONFLICT)
        .refused("unmerged")
        .check();
}

// Filters: never committed raw.

#[test]
fn filter_with_a_configured_driver() {
    case(
        "echo a > a",
        &format!("{REV}; echo '*.enc filter=rev' > .gitattributes; echo hello > s.enc"),
    )
    .refused("filter=rev")
    .check();
}

#[test]
fn filter_without_a_configured_driver() {
    case(
        "echo a > a",
        "echo '*.enc filter=git-crypt diff=git-crypt' > .gitattributes; echo secret > s.enc",
    )
    .refused("filter=git-crypt")
    .check();
}

#[test]
fn filtered_file_touched_after_smudge() {
    // The clone holds the smudged (clean-reversed) file; only its stat
    // changes. git runs the filter and sees no change; commit-back cannot
    // tell without running it, and says so.
    case(
        &format!("{REV}; echo '*.enc filter=rev' > .gitattributes; echo hello > s.enc"),
        &format!("{REV}; rm s.enc; git checkout -- s.enc; touch -m -d @1000000000 s.enc"),
    )
    .refused("cannot tell")
    .check();
}

#[test]
fn filtered_file_outside_files_or_deleted() {
    let base = "echo '*.enc filter=git-crypt' > .gitattributes; echo c > s.enc";
    case(base, "echo x > s.enc; mkdir gen; echo y > gen/a.json")
        .files("gen")
        .check();
    case(base, "rm s.enc").check();
}

#[test]
fn lfs_new_or_changed_file() {
    let attrs = "echo '*.bin filter=lfs diff=lfs merge=lfs -text' > .gitattributes";
    case(
        "echo a > a",
        &format!("{LFS}; {attrs}; seq 1 1000 > big.bin"),
    )
    .with_lfs()
    .check();
    case(
        &format!("{LFS}; {attrs}; seq 1 1000 > big.bin"),
        &format!("{LFS}; seq 1 2000 > big.bin"),
    )
    .with_lfs()
    .check();
}

#[test]
fn lfs_empty_file_is_committed_empty() {
    // git-lfs's clean filter writes no pointer for an empty file.
    case(
        "echo a > a",
        &format!("{LFS}; echo '*.bin filter=lfs diff=lfs merge=lfs -text' > .gitattributes; : > empty.bin; printf x > one.bin"),
    )
    .with_lfs()
    .check();
}

#[test]
fn lfs_file_smudged_and_touched_is_unchanged() {
    // The clone has the real content where the index has its pointer, as
    // after `git lfs pull`; git-lfs's clean filter gives the same pointer.
    case(
        &format!("{LFS}; echo '*.bin filter=lfs -text' > .gitattributes; seq 1 1000 > big.bin"),
        &format!("{LFS}; seq 1 1000 > big.bin; touch -m -d @1000000000 big.bin; echo n > new.txt"),
    )
    .check();
}

#[test]
fn lfs_file_whose_mode_changed() {
    case(
        &format!("{LFS}; echo '*.bin filter=lfs -text' > .gitattributes; seq 1 1000 > big.bin"),
        &format!("{LFS}; seq 1 1000 > big.bin; chmod +x big.bin"),
    )
    .check();
}

#[test]
fn filter_on_a_name_that_is_not_utf8() {
    case(
        "mkdir secrets; printf '* filter=git-crypt\\n' > secrets/.gitattributes; echo k > secrets/keep",
        "printf x > \"secrets/$(printf 'caf\\351').env\"",
    )
    .refused("filter=git-crypt")
    .check();
}

#[test]
fn working_tree_encoding() {
    case(
        "echo a > a",
        "echo '*.u16 working-tree-encoding=UTF-16' > .gitattributes; printf '\\377\\376a\\000' > x.u16",
    )
    .refused("working-tree-encoding")
    .check();
}

#[test]
fn attributes_that_convert_nothing_keep_the_plain_path() {
    // A root .gitattributes that says nothing about these files, or only
    // `binary` / `-text` / `-ident`: committed byte for byte, CRLF kept.
    case(
        "printf '*.lfs filter=lfs diff=lfs merge=lfs -text\\n*.png binary\\n*.raw -text -ident\\n' > .gitattributes",
        "mkdir gen; printf 'a\\r\\nb\\r\\n' > gen/a.json; printf '\\x89PNG\\r\\n' > gen/i.png; printf '$Id$\\r\\n' > gen/x.raw",
    )
    .files("gen")
    .check();
}

#[test]
fn legacy_and_mixed_conversion_attributes() {
    // Each decides alone whether the bytes are converted: held to git
    // whichever way commit-back stages them.
    case(
        "printf '*.c crlf\\n*.i crlf=input\\n*.n -crlf\\n*.ti -text ident\\n*.te -text eol=crlf\\n*.nt !text\\n*.u working-tree-encoding=UTF-8\\n*.e eol\\n' > .gitattributes",
        "mkdir gen; for e in c i n ti te nt u e; do printf 'a\\r\\n$Id$\\r\\n' > gen/f.$e; done",
    )
    .files("gen")
    .check();
}

#[test]
fn autocrlf_input_under_a_root_gitattributes() {
    case(
        "printf '*.lfs filter=lfs diff=lfs merge=lfs -text\\n' > .gitattributes",
        "git config core.autocrlf input; mkdir gen; printf 'a\\r\\nb\\r\\n' > gen/a.txt",
    )
    .files("gen")
    .check();
}

#[test]
fn working_tree_encoding_without_a_value_is_refused_as_git_refuses_it() {
    case(
        "printf '*.w working-tree-encoding\\n' > .gitattributes",
        "mkdir gen; printf 'a\\n' > gen/a.w",
    )
    .files("gen")
    .check();
}
