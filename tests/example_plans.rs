//! The plan files committed under `plans/` are ones this linkplan reads and verifies.

mod common;

use std::path::Path;

use common::run_offline;

#[test]
fn every_committed_plan_shows() {
    let plans = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let mut shown = 0;
    for entry in std::fs::read_dir(&plans).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("plan") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = run_offline(&plans, &["show", &name]).expect_code(0);
        assert!(
            text.stdout.contains("Plan: ") || text.stdout.contains("No changes."),
            "{name}: {}",
            text.stdout
        );
        run_offline(&plans, &["show", "--format", "json", &name]).expect_code(0);
        run_offline(&plans, &["show", "--format", "markdown", &name]).expect_code(0);
        shown += 1;
    }
    assert!(shown > 0, "no plan file under {}", plans.display());
}

#[test]
fn example_config_validates() {
    let plans = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    for config in ["workload-security.toml", "demo.toml"] {
        let run = run_offline(&plans, &["validate", "--config", config]).expect_code(0);
        assert!(run.stdout.contains("is valid"), "{config}: {}", run.stdout);
    }
}
