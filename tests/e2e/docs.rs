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
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Use outside Bitbucket Pipelines")
        .nth(1)
        .expect("section");
    for f in ["Jenkinsfile", "commit-back-docker.sh", "push-back.sh"] {
        let text = std::fs::read_to_string(format!("{}/examples/{f}", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
        assert!(
            section.contains(&text),
            "README's copy of examples/{f} differs from the file"
        );
    }
}
