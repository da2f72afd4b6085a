//! The README's Variables table and pipe.yml say what the code reads.

use commit_back::variables::VARIABLES;

fn readme_rows() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Variables")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .nth(1)
        .unwrap()
        .to_owned();
    table
        .lines()
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_owned(), cells[3].to_owned())
        })
        .collect()
}

#[test]
fn readme_variables_table_matches_the_code() {
    let rows = readme_rows();
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    let code: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
    assert_eq!(names, code, "README rows and src/variables.rs differ");
    for (v, (_, default)) in VARIABLES.iter().zip(&rows) {
        if !v.default.is_empty() {
            assert!(
                default.contains(&format!("`{}`", v.default)),
                "{}: README default {default:?}, code {:?}",
                v.name,
                v.default
            );
        }
    }
}

#[test]
fn pipe_yml_lists_every_variable_with_its_default() {
    let yml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipe.yml")).unwrap();
    for key in [
        "name:",
        "image:",
        "description:",
        "category:",
        "repository:",
        "maintainer:",
        "tags:",
        "variables:",
    ] {
        assert!(
            yml.lines().any(|l| l.starts_with(key)),
            "pipe.yml lacks {key}"
        );
    }
    let entries: Vec<&str> = yml.split("  - name: ").skip(1).collect();
    assert_eq!(entries.len(), VARIABLES.len());
    for (v, entry) in VARIABLES.iter().zip(entries) {
        assert!(
            entry.starts_with(&format!("{}\n", v.name)),
            "pipe.yml order/name: {entry}"
        );
        if !v.default.is_empty() {
            assert!(
                entry.contains(&format!(
                    "default: {}",
                    serde_json::to_string(v.default).unwrap()
                )),
                "{}",
                v.name
            );
        }
    }
}

#[test]
fn every_documented_variable_is_read_by_the_config() {
    // Setting each variable to an invalid value must produce an error naming
    // it, or be accepted as a string the config uses: prove the config reads it.
    use commit_back::config::RawVars;
    for v in VARIABLES {
        let raw = RawVars::from_pairs([(v.name.to_string(), "probe-value".to_string())]);
        let debug = format!("{raw:?}");
        // Secrets are read as such: their Debug form hides the value.
        let secret = testkit::SECRET_VARIABLES.contains(&v.name);
        let read = if secret {
            !debug.contains("probe-value") && debug.contains("Some(Secret(***))")
        } else {
            debug.contains("probe-value")
        };
        assert!(
            read,
            "{} is documented but RawVars does not read it",
            v.name
        );
    }
}

#[test]
fn readme_examples_are_the_files_the_tests_run() {
    let section =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/outside.md")).unwrap();
    for f in ["Jenkinsfile", "commit-back-docker.sh", "push-back.sh"] {
        let text = std::fs::read_to_string(format!("{}/examples/{f}", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
        assert!(
            section.contains(&text),
            "README's copy of examples/{f} differs from the file"
        );
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every relative link of the README and docs/ reaches a file, and a
/// heading there when it names one: nothing moved out of the README is
/// lost.
#[test]
fn relative_links_between_the_readme_and_docs_resolve() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    let headings = |path: &std::path::Path| -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        let mut in_code = false;
        text.lines()
            .filter(|l| {
                if l.starts_with("```") {
                    in_code = !in_code;
                }
                !in_code && l.starts_with('#')
            })
            .map(|l| anchor(l.trim_start_matches('#')))
            .collect()
    };
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let link = &rest[..end];
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = link.split_once('#').unwrap_or((link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            assert!(target.exists(), "{}: {link} does not exist", page.display());
            if !fragment.is_empty() && target.extension().is_some_and(|x| x == "md") {
                assert!(
                    headings(&target).iter().any(|h| h == fragment),
                    "{}: no heading #{fragment} in {}",
                    page.display(),
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} links found");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.lines().count() < 450, "the README is a front page");
    for moved in [
        "report.md",
        "refusals.md",
        "behaviour.md",
        "features.md",
        "outside.md",
    ] {
        assert!(
            readme.contains(&format!("(docs/{moved}")),
            "the README links docs/{moved}"
        );
    }
}
