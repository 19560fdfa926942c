//! The IAM policy of `linkplan iam-policy` against the calls the provider makes.
//!
//! The providers crate's sources are scanned for SDK operation calls in two forms: the fluent
//! builder on a client (`ec2.client.describe_vpcs()`, whose snake-case name is the operation's)
//! and the operation name given to `send!` (`send!(site, "DescribeVpcs", ...)`). Each must be
//! listed in `linkplan_aws::iam::OPERATIONS`, each listed operation must still be called, and
//! the printed policy must allow the actions of them all.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use linkplan_aws::iam::{OPERATIONS, SDK_OPERATIONS};

/// Methods of the SDK clients that are not API operations.
const CLIENT_METHODS: &[&str] = &["as_ref", "clone", "config", "from_conf", "new"];

/// Returns every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the providers sources are readable") {
        let path = entry.expect("a directory entry is readable").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Returns `text` without `//` comments and without whitespace, so that a call split over
/// lines (`ec2\n    .client\n    .describe_vpcs()`) reads as one token run.
fn code_without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(start) => &line[..start],
            None => line,
        })
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect()
}

fn identifier_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// Returns the operation names of fluent calls on a client, such as `describe_vpcs`.
fn fluent_calls(code: &str) -> Vec<String> {
    let mut calls = Vec::new();
    for (start, _) in code.match_indices("client.") {
        let rest = &code[start + "client.".len()..];
        let name = identifier_at(rest);
        let is_call = rest[name.len()..].starts_with('(');
        if !name.is_empty() && is_call && !CLIENT_METHODS.contains(&name) {
            calls.push(name.to_string());
        }
    }
    calls
}

/// Returns the operation names given to `send!` and `send_without_blind_retry!`.
fn sent_operations(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for macro_name in ["send!(", "send_without_blind_retry!("] {
        for (start, _) in code.match_indices(macro_name) {
            let rest = &code[start + macro_name.len()..];
            let Some(quote) = rest.find('"') else {
                continue;
            };
            // The literal is the second argument: the first is the call site.
            if rest[..quote].matches(',').count() != 1 {
                continue;
            }
            let literal = &rest[quote + 1..];
            let name = identifier_at(literal);
            if literal[name.len()..].starts_with('"') && !name.is_empty() {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Folds an operation name for comparison: `describe_vpcs`, `DescribeVpcs` and
/// `ListHostedZonesByVPC` / `list_hosted_zones_by_vpc` compare equal.
fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Returns each operation the providers crate calls, folded, with the file that calls it.
fn called_operations() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers/src");
    let mut found = Vec::new();
    for file in rust_files(&root) {
        // The policy data itself names operations without calling them.
        if file.ends_with("iam.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a source file is readable");
        let code = code_without_comments(&text);
        let relative = file
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(&file)
            .display()
            .to_string();
        for name in fluent_calls(&code)
            .into_iter()
            .chain(sent_operations(&code))
        {
            found.push((folded(&name), relative.clone()));
        }
    }
    found
}

#[test]
fn scan_finds_known_calls() {
    let called: BTreeSet<String> = called_operations().into_iter().map(|(n, _)| n).collect();
    // A scan that found nothing would let every other test here pass.
    assert!(called.contains("describevpcs"), "{called:?}");
    assert!(called.contains("changeresourcerecordsets"), "{called:?}");
    assert!(called.contains("getcalleridentity"), "{called:?}");
}

#[test]
fn every_called_operation_is_listed() {
    let listed: BTreeSet<String> = OPERATIONS.iter().map(|o| folded(o.name)).collect();
    let missing: BTreeSet<String> = called_operations()
        .into_iter()
        .filter(|(name, _)| !listed.contains(name))
        .map(|(name, file)| format!("{name} (called in {file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "operations called but missing from OPERATIONS in providers/src/iam.rs: {missing:?}"
    );
}

#[test]
fn every_listed_operation_is_called() {
    let called: BTreeSet<String> = called_operations().into_iter().map(|(n, _)| n).collect();
    let unused: Vec<&str> = OPERATIONS
        .iter()
        .filter(|o| !called.contains(&folded(o.name)))
        .map(|o| o.name)
        .collect();
    assert!(
        unused.is_empty(),
        "OPERATIONS in providers/src/iam.rs lists operations no source calls, which the \
         policy should not allow: {unused:?}"
    );
}

#[test]
fn printed_policy_allows_every_operation() {
    let directory = common::workdir("iam-policy-allows-every-operation");
    let run = common::run_offline(&directory, &["iam-policy"]).expect_code(0);
    let policy: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("iam-policy prints JSON");
    assert_eq!(policy["Version"], "2012-10-17");

    let mut allowed: BTreeSet<String> = BTreeSet::new();
    for statement in policy["Statement"].as_array().expect("a statement list") {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        for action in statement["Action"].as_array().expect("an action list") {
            let action = action.as_str().expect("actions are strings");
            assert!(!action.contains('*'), "wildcard action {action}");
            allowed.insert(action.to_ascii_lowercase());
        }
    }
    for operation in OPERATIONS.iter().chain(SDK_OPERATIONS) {
        for action in operation.actions() {
            let expected = format!("{}:{action}", operation.service.prefix()).to_ascii_lowercase();
            assert!(
                allowed.contains(&expected),
                "the policy lacks {expected}, needed by {}",
                operation.name
            );
        }
    }
}

#[test]
fn state_bucket_scopes_s3_statement() {
    let directory = common::workdir("iam-policy-state-bucket");
    let run = common::run_offline(&directory, &["iam-policy", "--state-bucket", "lp-state"])
        .expect_code(0);
    let policy: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("iam-policy prints JSON");
    let statements = policy["Statement"].as_array().expect("a statement list");
    for statement in statements {
        let actions = statement["Action"].as_array().expect("an action list");
        let s3 = actions
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.starts_with("s3:")));
        if s3 {
            assert_eq!(
                statement["Resource"],
                serde_json::json!(["arn:aws:s3:::lp-state", "arn:aws:s3:::lp-state/*"])
            );
        } else {
            assert_eq!(statement["Resource"], "*", "{statement}");
        }
    }
}
