//! `linkplan init` against moto: the config it writes, its choice of subnets, and its refusals.
//!
//! The local provider side offers its services in use1-az1, use1-az2 and use1-az4 (see
//! `scripts/local_aws.py`). Fixture subnets are made by zone id, and init compares zone ids,
//! so a subnet made for `use1-az3` is in a zone no service offers whatever names moto gives.

mod common;

use common::{linkplan, run, workdir};
use linkplan_testkit::{LocalVpc, MotoServer, ProviderSide, VpcSpec, moto, unique_name};

/// Returns the `--service HOST=NAME` arguments of the local provider side.
fn service_args(provider: &ProviderSide) -> Vec<String> {
    provider
        .services
        .by_host()
        .iter()
        .flat_map(|(host, name)| ["--service".to_string(), format!("{host}={name}")])
        .collect()
}

/// Runs `linkplan init --vpc VPC` with the local services and `extra` arguments.
fn init(server: &MotoServer, dir: &std::path::Path, vpc: &LocalVpc, extra: &[&str]) -> common::Run {
    let provider = server.provider_side();
    let mut args: Vec<String> = vec!["init".into(), "--vpc".into(), vpc.vpc_id.clone()];
    args.extend(service_args(&provider));
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(server, dir, &args)
}

/// Returns the `hub.subnet_ids` of the config at `path`.
fn subnet_ids(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("init wrote the config");
    let value: toml::Value = toml::from_str(&text).expect("the config is TOML");
    value["hub"]["subnet_ids"]
        .as_array()
        .expect("hub.subnet_ids is a list")
        .iter()
        .map(|id| id.as_str().expect("ids are strings").to_string())
        .collect()
}

#[test]
fn init_config_plans_cleanly() {
    let server = moto();
    let stack = unique_name("init");
    let hub = server.vpc(
        VpcSpec::new(
            "us-east-1",
            "10.61.0.0/16",
            &["use1-az1", "use1-az2", "use1-az3"],
        )
        .name(&stack),
    );
    let dir = workdir(&stack);

    let written = init(server, &dir, &hub, &["--name", &stack]).expect_code(0);
    assert!(
        written.stdout.contains("Wrote `linkplan.toml`"),
        "{}",
        written.stdout
    );

    // use1-az3 is offered by no service, so its subnet is left out and named in a comment.
    let config = dir.join("linkplan.toml");
    assert_eq!(subnet_ids(&config), hub.subnet_ids[..2].to_vec());
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("# Other subnets of the VPC:"), "{text}");
    assert!(text.contains(&hub.subnet_ids[2]), "{text}");
    assert!(text.contains(&format!("name = \"{stack}\"")), "{text}");

    run(server, &dir, &["validate"]).expect_code(0);
    let planned = run(server, &dir, &["plan", "--detailed-exitcode"]).expect_code(2);
    assert!(
        planned.stdout.contains("to add"),
        "{}\n{}",
        planned.stdout,
        planned.stderr
    );
    assert!(
        !planned.stderr.contains("error:"),
        "the plan of an init config has errors:\n{}",
        planned.stderr
    );
    assert!(dir.join(format!("plans/{stack}.plan")).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn init_prefers_private_subnets() {
    let server = moto();
    let stack = unique_name("init-private");
    // Both fixture subnets share one table with a default route to an internet gateway.
    let hub = server.vpc(
        VpcSpec::new("us-east-1", "10.62.0.0/16", &["use1-az1", "use1-az2"])
            .internet_gateway()
            .name(&stack),
    );
    let public_az1 = &hub.subnets[0];
    let public_az2 = &hub.subnets[1];

    // A private subnet in use1-az1: a table of its own, with no default route.
    let ec2 = server.ec2("us-east-1").await;
    let private = ec2
        .create_subnet()
        .vpc_id(&hub.vpc_id)
        .cidr_block("10.62.200.0/24")
        .availability_zone(&public_az1.az)
        .send()
        .await
        .expect("the private subnet is created");
    let private_id = private
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap()
        .to_string();
    let table = ec2
        .create_route_table()
        .vpc_id(&hub.vpc_id)
        .send()
        .await
        .expect("the private route table is created");
    let table_id = table
        .route_table()
        .and_then(|t| t.route_table_id())
        .unwrap()
        .to_string();
    ec2.associate_route_table()
        .route_table_id(&table_id)
        .subnet_id(&private_id)
        .send()
        .await
        .expect("the private subnet is associated");

    let dir = workdir(&stack);
    let written = init(server, &dir, &hub, &["--name", &stack]).expect_code(0);

    let chosen = subnet_ids(&dir.join("linkplan.toml"));
    assert_eq!(chosen, vec![private_id.clone(), public_az2.id.clone()]);
    assert!(!chosen.contains(&public_az1.id));
    assert!(
        written.stderr.contains(&format!(
            "zone use1-az2 has only public subnets, so init picked public subnet `{}`",
            public_az2.id
        )),
        "{}",
        written.stderr
    );
    let text = std::fs::read_to_string(dir.join("linkplan.toml")).unwrap();
    assert!(text.contains("use1-az1 (us-east-1"), "{text}");
    assert!(text.contains("private"), "{text}");
}

#[test]
fn init_keeps_existing_config() {
    let server = moto();
    let stack = unique_name("init-exists");
    let hub = server.vpc(VpcSpec::new("us-east-1", "10.63.0.0/16", &["use1-az1"]));
    let dir = workdir(&stack);
    std::fs::write(dir.join("linkplan.toml"), "# kept\n").unwrap();

    let refused = init(server, &dir, &hub, &[]).expect_code(1);
    assert!(
        refused
            .stderr
            .contains("error: config file `linkplan.toml` already exists"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("help: pass --force"),
        "{}",
        refused.stderr
    );
    let kept = std::fs::read_to_string(dir.join("linkplan.toml")).unwrap();
    assert_eq!(kept, "# kept\n");

    init(server, &dir, &hub, &["--force"]).expect_code(0);
    assert_eq!(subnet_ids(&dir.join("linkplan.toml")), hub.subnet_ids);
}

#[test]
fn init_writes_named_config() {
    let server = moto();
    let stack = unique_name("init-named");
    let hub = server.vpc(VpcSpec::new("us-east-1", "10.64.0.0/16", &["use1-az4"]));
    let dir = workdir(&stack);

    let written = init(server, &dir, &hub, &["--config", "stacks/hub.toml"]).expect_code(0);
    assert!(
        written
            .stdout
            .contains("linkplan plan --config stacks/hub.toml"),
        "{}",
        written.stdout
    );
    assert_eq!(subnet_ids(&dir.join("stacks/hub.toml")), hub.subnet_ids);
    assert!(!dir.join("linkplan.toml").exists());
}

#[test]
fn init_rejects_missing_vpc() {
    let server = moto();
    let dir = workdir(&unique_name("init-missing"));
    let output = linkplan(server, &dir)
        .args(["init", "--vpc", "vpc-0123456789abcdef0"])
        .args(service_args(&server.provider_side()))
        .output()
        .expect("linkplan runs");
    let refused = common::Run::from(output).expect_code(1);
    assert!(
        refused
            .stderr
            .contains("error: VPC `vpc-0123456789abcdef0` was not found in us-east-1"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("help: "), "{}", refused.stderr);
    assert!(!dir.join("linkplan.toml").exists());
}

#[test]
fn init_rejects_unknown_service() {
    let server = moto();
    let stack = unique_name("init-service");
    let hub = server.vpc(VpcSpec::new("us-east-1", "10.65.0.0/16", &["use1-az1"]));
    let dir = workdir(&stack);
    // Without --service, init looks up the Workload Security services, which moto lacks.
    let refused = run(server, &dir, &["init", "--vpc", &hub.vpc_id]).expect_code(1);
    assert!(
        refused
            .stderr
            .contains("error: 4 of the endpoint services are not available to this account"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("com.amazonaws.vpce.us-east-1.vpce-svc-0ca160f19663f348e"),
        "{}",
        refused.stderr
    );
    assert!(!dir.join("linkplan.toml").exists());
}

/// Runs `linkplan init ARGS` in a new folder through a fault proxy in front of moto, and returns
/// the run, the number of AWS requests it made and the folder.
fn init_through_proxy(name: &str, args: &[&str]) -> (common::Run, usize, std::path::PathBuf) {
    let server = moto();
    let proxy = linkplan_testkit::FaultProxy::start(&server.endpoint);
    let dir = workdir(&unique_name(name));
    let run = common::run_via(&proxy, &dir, &[&["init"], args].concat());
    (run, proxy.requests().len(), dir)
}

#[test]
fn init_checks_arguments_before_aws() {
    let service = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0";
    let relay_default = "com.amazonaws.vpce.us-east-1.vpce-svc-0ca160f19663f348e";
    let vpc = "vpc-0123456789abcdef0";
    let agents = format!("agents={relay_default}");
    let relay_twice = [format!("relay={service}"), format!("relay={service}")];
    let other_region = "relay=com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0";
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["--vpc", vpc, "--name", "BAD"],
            "error: invalid stack name `BAD` in --name",
            "help: use 1 to 64 lowercase letters, digits and hyphens, starting with a letter",
        ),
        (
            vec!["--vpc", vpc, "--name", "../x"],
            "error: invalid stack name `../x` in --name",
            "help: use 1 to 64",
        ),
        (
            vec!["--vpc", "vpc-12"],
            "error: invalid VPC id `vpc-12` in --vpc",
            "help: use an id of the form vpc-",
        ),
        (
            vec!["--vpc", vpc, "--region", "useast1"],
            "error: invalid region `useast1` in --region",
            "help: use an AWS region code",
        ),
        (
            vec![
                "--vpc",
                vpc,
                "--service",
                &relay_twice[0],
                "--service",
                &relay_twice[1],
            ],
            "error: --service names host `relay` twice",
            "help: pass one --service HOST=SERVICE_NAME per host",
        ),
        (
            vec!["--vpc", vpc, "--service", other_region],
            "error: --service relay=com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0 \
             names a service in eu-west-1, but --region is us-east-1",
            "help: interface endpoints reach services of their own region only",
        ),
        (
            vec!["--vpc", vpc, "--service", &agents],
            "error: endpoint service `com.amazonaws.vpce.us-east-1.vpce-svc-0ca160f19663f348e` \
             would serve both `agents` and `relay`",
            "help: give each host its own service",
        ),
        (
            vec!["--vpc", vpc, "--config", "."],
            "error: --config `.` is a folder",
            "help: name the config file to write",
        ),
    ];
    for (args, error, help) in cases {
        let (run, requests, dir) = init_through_proxy("init-args", &args);
        let run = run.expect_code(1);
        assert!(run.stderr.contains(error), "{args:?}:\n{}", run.stderr);
        assert!(run.stderr.contains(help), "{args:?}:\n{}", run.stderr);
        assert_eq!(requests, 0, "{args:?} made AWS calls:\n{}", run.stderr);
        assert!(
            !dir.join("linkplan.toml").exists(),
            "{args:?} wrote a config"
        );
    }
}

#[test]
fn init_rejects_unknown_host() {
    let args = [
        "--vpc",
        "vpc-0123456789abcdef0",
        "--service",
        "agent=com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0",
    ];
    let (run, requests, dir) = init_through_proxy("init-host", &args);
    let run = run.expect_code(1);
    assert!(
        run.stderr.contains(
            "error: invalid value 'agent=com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0' \
             for '--service <HOST=SERVICE_NAME>': unknown host `agent`: use one of relay, agents, \
             dsmim, app"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(requests, 0, "AWS calls were made:\n{}", run.stderr);
    assert!(!dir.join("linkplan.toml").exists());
}
