//! Tests of the plan file: round trip, digest and format version checks, and determinism.

mod support;

use std::path::{Path, PathBuf};

use linkplan_engine::plan_file::{self, FORMAT_VERSION, Plan, PlanFileError};
use linkplan_engine::planner::Mode;

/// A config with every kind of value a plan file holds: a spoke in another account with its
/// own credentials, route tables on both sides and the four default services.
const CONFIG: &str = r#"
name = "web"

[hub]
region = "us-east-1"
vpc_id = "vpc-0000aaaa"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
route_table_ids = ["rtb-0000000a"]

[[spoke]]
name = "eu"
region = "eu-west-1"
vpc_id = "vpc-0000bbbb"
route_table_ids = ["rtb-0000000b"]
account_id = "222222222222"
profile = "spoke"
"#;

/// A step that deletes a hosted zone, in the form the plan file writes steps.
const EXTRA_STEP: &str = r#"
[[step]]
address = "zone.extra"
action = "delete"
id = "ZPHZ0000000001"

[step.context]
region = "us-east-1"

[step.before]
type = "hosted_zone"
name = "deepsecurity.trendmicro.com"
vpc_id = "vpc-0000aaaa"
vpc_region = "us-east-1"
comment = ""
tags = {}
"#;

/// Plans [`CONFIG`] against an account with nothing of the stack yet.
fn sample_plan() -> Plan {
    let stack = support::stack_from(CONFIG);
    let mut observed = support::empty_hub(&stack);
    let spoke = support::vpc(
        support::SPOKE_VPC,
        "eu-west-1",
        support::OTHER_ACCOUNT,
        &["10.9.0.0/16"],
    );
    observed
        .vpcs
        .insert(support::SPOKE_VPC.to_string(), Some(spoke));
    let hub_table = support::route_table("rtb-0000000a", support::HUB_VPC, &[]);
    let spoke_table = support::route_table("rtb-0000000b", support::SPOKE_VPC, &[]);
    observed
        .route_tables
        .insert("rtb-0000000a".to_string(), Some(hub_table));
    observed
        .route_tables
        .insert("rtb-0000000b".to_string(), Some(spoke_table));
    let spoke_context = stack.spoke_context(&stack.spokes[0]);
    observed
        .identities
        .push((spoke_context, support::identity(support::OTHER_ACCOUNT)));
    support::plan_for(&stack, &observed, Mode::Apply)
}

/// Writes `plan` into a new folder and returns the file's path.
fn written(name: &str, plan: &Plan) -> PathBuf {
    let path = support::scratch_dir(name).join("plans").join("web.plan");
    plan_file::write(&path, plan).expect("the plan is written");
    path
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).expect("the plan file reads")
}

#[test]
fn round_trip_is_identical() {
    let plan = sample_plan();
    let path = written("round-trip", &plan);
    let read = plan_file::read(&path).expect("the plan file is accepted");
    assert_eq!(read, plan, "the plan read back equals the plan written");
    assert_eq!(
        read.id(),
        plan.id(),
        "the plan id, and so every token, survives the round trip"
    );
}

#[test]
fn edited_value_is_rejected_as_edited() {
    let path = written("edited", &sample_plan());
    let text = read_text(&path);
    let edited = text.replacen("region = \"eu-west-1\"", "region = \"eu-west-2\"", 1);
    assert_ne!(edited, text, "the plan file holds the spoke region");
    std::fs::write(&path, edited).expect("the edit is written");

    let error = plan_file::read(&path).expect_err("an edited plan is rejected");
    assert!(
        matches!(error, PlanFileError::Edited { .. }),
        "rejected as edited: {error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "plan file `{}` was changed after it was written: its digest does not match",
            path.display()
        ),
        "the message names the file"
    );
}

#[test]
fn single_byte_edits_are_rejected() {
    let stack = support::stack_from(support::ONE_SERVICE_CONFIG);
    let plan = support::plan_for(&stack, &support::empty_hub(&stack), Mode::Apply);
    let path = written("every-byte", &plan);
    let text = read_text(&path);
    // Every byte of the header, the first keys and the integrity table is edited, and every
    // seventh byte in between, because parsing every edit is too slow in a debug build.
    let edges = 400;
    let sampled = (0..text.len()).filter(|i| *i < edges || *i + edges >= text.len() || i % 7 == 0);
    for index in sampled {
        let byte = text.as_bytes()[index];
        let replacement = if byte == b'x' { b'y' } else { b'x' };
        let mut bytes = text.clone().into_bytes();
        bytes[index] = replacement;
        let edited = String::from_utf8(bytes).expect("the plan file is ASCII");
        assert!(
            plan_file::parse("web.plan", &edited).is_err(),
            "the plan is rejected with byte {index} ({:?}) changed",
            byte as char
        );
    }
}

#[test]
fn text_after_digest_is_rejected_as_edited() {
    let path = written("appended", &sample_plan());
    let text = read_text(&path);
    for appended in [EXTRA_STEP, "# reviewed\n"] {
        let edited = format!("{text}{appended}");
        let result = plan_file::parse("web.plan", &edited);
        assert!(
            matches!(result, Err(PlanFileError::Edited { .. })),
            "text appended after the digest is rejected as an edit: {appended:?} gave {:?}",
            result.map(|p| p.steps.len())
        );
    }
}

#[test]
fn unknown_format_version_is_rejected() {
    let path = written("version", &sample_plan());
    let text = read_text(&path);
    let edited = text.replacen(
        &format!("format_version = {FORMAT_VERSION}\n"),
        "format_version = 7\n",
        1,
    );
    assert_ne!(
        edited, text,
        "the plan file has its format version on a line of its own"
    );
    std::fs::write(&path, edited).expect("the edit is written");

    let error = plan_file::read(&path).expect_err("a plan of another version is rejected");
    assert!(
        matches!(
            error,
            PlanFileError::UnknownVersion {
                found: 7,
                supported: FORMAT_VERSION,
                ..
            }
        ),
        "rejected for its version before its digest is checked: {error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "plan file `{}` has format version 7, but this linkplan reads version {FORMAT_VERSION}",
            path.display()
        ),
        "the message names both versions"
    );
}

#[test]
fn render_is_identical_for_same_inputs() {
    let first = sample_plan();
    let second = sample_plan();
    assert_eq!(
        plan_file::render(&first),
        plan_file::render(&second),
        "two plans of the same config and live state render byte for byte the same"
    );
    let first_file = read_text(&written("render-first", &first));
    let second_file = read_text(&written("render-second", &second));
    assert_eq!(
        first_file, second_file,
        "and are written byte for byte the same"
    );
}

#[test]
fn crlf_line_endings_are_named() {
    let path = written("crlf", &sample_plan());
    let text = read_text(&path).replace('\n', "\r\n");
    std::fs::write(&path, text).expect("the converted file is written");

    let error = plan_file::read(&path).expect_err("a CRLF plan is rejected");
    assert!(
        matches!(error, PlanFileError::LineEndings { .. }),
        "rejected for its line endings: {error}"
    );
    assert!(error.help().contains(".gitattributes"), "{}", error.help());
}

#[test]
fn invalid_stack_name_is_rejected() {
    // The digest is recomputed on write, so these files pass the digest check.
    let mut outside = sample_plan();
    outside.stack_name = "../../zz".to_string();
    let mut in_stack = sample_plan();
    in_stack.stack.name = "a/b".to_string();
    for (plan, name) in [(outside, "../../zz"), (in_stack, "a/b")] {
        let path = written("stack-name", &plan);
        let error = plan_file::read(&path).expect_err("the plan is rejected");
        assert!(
            matches!(error, PlanFileError::NotAPlan { .. }),
            "rejected as not a plan: {error}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "`{}` is not a linkplan plan file: its stack name `{name}` is invalid",
                path.display()
            )
        );
    }
}

#[test]
fn format_version_of_wrong_type_is_named() {
    let path = written("version-type", &sample_plan());
    let text = read_text(&path);
    let version_line = format!("format_version = {FORMAT_VERSION}\n");
    let cases = [
        (
            format!("format_version = \"{FORMAT_VERSION}\"\n"),
            format!("string \"{FORMAT_VERSION}\""),
        ),
        (
            format!("format_version = {FORMAT_VERSION}.0\n"),
            format!("float {FORMAT_VERSION}.0"),
        ),
    ];
    for (line, found) in cases {
        let edited = text.replacen(&version_line, &line, 1);
        assert_ne!(
            edited, text,
            "the plan file has its format version on a line"
        );
        let error = plan_file::parse("web.plan", &edited).expect_err("the plan is rejected");
        assert_eq!(
            error.to_string(),
            format!(
                "`web.plan` is not a linkplan plan file: its `format_version` has the wrong \
                 type: expected an integer, found {found}"
            )
        );
    }
    let missing = text.replacen(&version_line, "", 1);
    let error = plan_file::parse("web.plan", &missing).expect_err("the plan is rejected");
    assert!(
        error.to_string().ends_with("it has no `format_version`"),
        "{error}"
    );
}
