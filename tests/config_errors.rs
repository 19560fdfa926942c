//! Config errors: each names the key, the file, the line and column, states what is expected,
//! and leaves no plan file behind. These runs stop before any AWS call.

mod common;

use common::{run_offline, workdir};

const VALID: &str = r#"name = "web"

[hub]
region = "us-east-1"
vpc_id = "vpc-0123456789abcdef0"
subnet_ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
"#;

/// Runs `plan` on `config` and returns stderr, checking the exit code and that no plan file
/// was written.
fn plan_error(name: &str, config: &str) -> String {
    let dir = workdir(name);
    std::fs::write(dir.join("linkplan.toml"), config).unwrap();
    let run = run_offline(&dir, &["plan"]).expect_code(1);
    assert!(
        !dir.join("plans").exists(),
        "a plan folder was written for {name}"
    );
    run.stderr
}

#[test]
fn missing_key() {
    let stderr = plan_error(
        "missing-key",
        &VALID.replace("vpc_id = \"vpc-0123456789abcdef0\"\n", ""),
    );
    assert!(
        stderr.contains("error: invalid config: missing key `vpc_id`"),
        "{stderr}"
    );
    assert!(stderr.contains("--> linkplan.toml:3:1"), "{stderr}");
    assert!(stderr.contains("help: add the key"), "{stderr}");
}

#[test]
fn unknown_key() {
    let stderr = plan_error(
        "unknown-key",
        &VALID.replace("[hub]\n", "[hub]\nsubnet = \"x\"\n"),
    );
    assert!(
        stderr.contains("error: invalid config: unknown key `subnet`, expected one of"),
        "{stderr}"
    );
    assert!(stderr.contains("--> linkplan.toml:4:1"), "{stderr}");
    assert!(stderr.contains("4 | subnet = \"x\""), "{stderr}");
}

#[test]
fn wrong_type() {
    let stderr = plan_error(
        "wrong-type",
        &VALID.replace("region = \"us-east-1\"", "region = 1"),
    );
    assert!(
        stderr.contains("error: invalid config: invalid type: integer `1`, expected a string"),
        "{stderr}"
    );
    assert!(stderr.contains("--> linkplan.toml:4:10"), "{stderr}");
    assert!(
        stderr.contains("help: change the value to the expected type"),
        "{stderr}"
    );
}

#[test]
fn duplicate_subnet() {
    let stderr = plan_error(
        "duplicate-subnet",
        &VALID.replace("abcdef1\"]", "abcdef0\"]"),
    );
    assert!(
        stderr.contains("error: duplicate `subnet-0123456789abcdef0` in `hub.subnet_ids`"),
        "{stderr}"
    );
    assert!(stderr.contains("--> linkplan.toml:6:43"), "{stderr}");
    assert!(stderr.contains("help: list each id once"), "{stderr}");
}

#[test]
fn malformed_id() {
    let stderr = plan_error(
        "malformed-id",
        &VALID.replace("vpc-0123456789abcdef0", "vpc-12"),
    );
    assert!(
        stderr.contains("error: invalid `hub.vpc_id` `vpc-12`"),
        "{stderr}"
    );
    assert!(stderr.contains("--> linkplan.toml:5:10"), "{stderr}");
    assert!(
        stderr.contains("help: use an id of the form vpc- followed by 8 or 17 hexadecimal digits"),
        "{stderr}"
    );
}

#[test]
fn several_errors_reported_together() {
    let config = VALID
        .replace("vpc-0123456789abcdef0", "vpc-12")
        .replace("us-east-1", "useast1");
    let stderr = plan_error("several-errors", &config);
    assert!(stderr.contains("invalid region `useast1`"), "{stderr}");
    assert!(stderr.contains("invalid `hub.vpc_id` `vpc-12`"), "{stderr}");
    assert!(stderr.contains("2 errors; nothing was written"), "{stderr}");
}

#[test]
fn missing_file() {
    let dir = workdir("missing-file");
    let run = run_offline(&dir, &["plan", "--config", "absent.toml"]).expect_code(1);
    assert!(
        run.stderr
            .contains("error: failed to read config `absent.toml`"),
        "{}",
        run.stderr
    );
}

#[test]
fn validate_accepts_valid_config() {
    let dir = workdir("validate-ok");
    std::fs::write(dir.join("linkplan.toml"), VALID).unwrap();
    let run = run_offline(&dir, &["validate"]).expect_code(0);
    assert!(
        run.stdout
            .contains("Config `linkplan.toml` is valid: stack `web`"),
        "{}",
        run.stdout
    );
}

#[test]
fn validate_rejects_shared_service_name() {
    let dir = workdir("validate-shared-service");
    let config = format!(
        "{VALID}\n[services]\n\
         relay = \"com.amazonaws.vpce.us-east-1.vpce-svc-0ca160f19663f348e\"\n\
         agents = \"com.amazonaws.vpce.us-east-1.vpce-svc-0ca160f19663f348e\"\n"
    );
    std::fs::write(dir.join("linkplan.toml"), config).unwrap();
    let run = run_offline(&dir, &["validate"]).expect_code(1);
    assert!(
        run.stderr.contains(
            "error: endpoint service `com.amazonaws.vpce.us-east-1.vpce-svc-0ca160f19663f348e` \
             of `agents` is also the service of `relay`"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--> linkplan.toml:10:10"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn error_count_states_what_was_not_done() {
    let dir = workdir("error-count-outcome");
    let config = VALID.replace("vpc-0123456789abcdef0", "vpc-12");
    std::fs::write(dir.join("linkplan.toml"), config).unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["plan"], "\n1 error; nothing was written\n"),
        (&["validate"], "\n1 error\n"),
        (&["verify"], "\n1 error; no name was resolved\n"),
        (
            &["unlock", "web", "--force", "--config", "linkplan.toml"],
            "\n1 error; no lock was removed\n",
        ),
    ];
    for (args, ending) in cases {
        let run = run_offline(&dir, args).expect_code(1);
        assert!(
            run.stderr.contains("error: invalid `hub.vpc_id` `vpc-12`"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.ends_with(ending), "{args:?}: {}", run.stderr);
    }
}
