//! Pre-write checks against moto: a plan that would exceed the hub VPC's interface endpoint
//! quota is rejected before the plan file is written and before any mutating call, and every
//! plan warns about the names the private zone hides.

mod common;

use aws_sdk_ec2::types::VpcEndpointType;
use common::{hub_config, run_offline, run_via, workdir, write_config};
use linkplan_testkit::{FaultProxy, LocalVpc, VpcSpec, moto, unique_name};

/// Creates `count` interface endpoints in `hub` that belong to no stack, as another team's
/// endpoints would.
async fn foreign_endpoints(hub: &LocalVpc, service_name: &str, count: usize) {
    let ec2 = moto().ec2("us-east-1").await;
    for _ in 0..count {
        ec2.create_vpc_endpoint()
            .vpc_id(&hub.vpc_id)
            .vpc_endpoint_type(VpcEndpointType::Interface)
            .service_name(service_name)
            .subnet_ids(&hub.subnet_ids[0])
            .private_dns_enabled(false)
            .send()
            .await
            .expect("a foreign endpoint is created");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_rejects_plan_before_any_write() {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name("quota");
    let hub = server.vpc(VpcSpec::new(
        "us-east-1",
        "10.61.0.0/16",
        &["use1-az1", "use1-az2"],
    ));
    foreign_endpoints(&hub, &provider.services.relay, 47).await;
    let dir = workdir(&stack);
    write_config(&dir, &hub_config(&stack, &hub, &provider));
    let proxy = FaultProxy::start(&server.endpoint);

    let run = run_via(&proxy, &dir, &["plan"]);

    assert_eq!(run.code, 1, "{}", run.stderr);
    let expected = format!(
        "error: VPC `{}` would hold 51 interface endpoints, over its quota of 50: it has 47 and \
         the plan creates 4\n  \
         = the quota counts every interface endpoint of the VPC, whoever created it; a replaced \
         endpoint counts twice until its old copy is deleted\n\
         help: delete interface endpoints the VPC no longer needs, or have the quota raised in \
         Service Quotas and set `hub.endpoint_quota` to the new value",
        hub.vpc_id
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(
        run.stderr.contains("1 error; nothing was written"),
        "{}",
        run.stderr
    );
    assert!(!dir.join(format!("plans/{stack}.plan")).exists());
    assert_eq!(proxy.mutating_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn raised_quota_lets_plan_through() {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name("quota-raised");
    let hub = server.vpc(VpcSpec::new(
        "us-east-1",
        "10.62.0.0/16",
        &["use1-az1", "use1-az2"],
    ));
    foreign_endpoints(&hub, &provider.services.relay, 47).await;
    let dir = workdir(&stack);
    let config = hub_config(&stack, &hub, &provider)
        .replace("subnet_ids = [", "endpoint_quota = 51\nsubnet_ids = [");
    write_config(&dir, &config);
    let proxy = FaultProxy::start(&server.endpoint);

    let run = run_via(&proxy, &dir, &["plan"]);

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(dir.join(format!("plans/{stack}.plan")).exists());
    assert_eq!(proxy.mutating_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_warns_about_hidden_names() {
    let server = moto();
    let provider = server.provider_side();
    let stack = unique_name("nxdomain");
    let hub = server.vpc(VpcSpec::new("us-east-1", "10.63.0.0/16", &["use1-az1"]));
    let dir = workdir(&stack);
    write_config(&dir, &hub_config(&stack, &hub, &provider));
    let proxy = FaultProxy::start(&server.endpoint);

    let run = run_via(&proxy, &dir, &["plan"]);

    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected = "warning: the private zone `deepsecurity.trendmicro.com` answers NXDOMAIN for \
         every name under it but `agents.deepsecurity.trendmicro.com`, \
         `app.deepsecurity.trendmicro.com`, `dsmim.deepsecurity.trendmicro.com`, \
         `relay.deepsecurity.trendmicro.com`, inside each VPC it is associated with\n  \
         = names known to be in use that it hides: `help.deepsecurity.trendmicro.com` (the Deep \
         Security Help Center), `automation.deepsecurity.trendmicro.com` (the Deep Security API \
         guides); Trend Micro publishes no complete list of its names under the domain, so \
         agents may need others\n\
         help: when clients need another name under the zone, add it to [services] if an \
         endpoint service offers it, or add a record for it to the zone";
    assert!(run.stderr.contains(expected), "{}", run.stderr);
    assert_eq!(proxy.mutating_count(), 0);
}

#[test]
fn invalid_quota_is_rejected_offline() {
    let dir = workdir("invalid-quota");
    let config = "name = \"web\"\n\n[hub]\nregion = \"us-east-1\"\n\
                  vpc_id = \"vpc-0123456789abcdef0\"\n\
                  subnet_ids = [\"subnet-0123456789abcdef0\"]\nendpoint_quota = 0\n";
    write_config(&dir, config);

    let run = run_offline(&dir, &["validate"]);

    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: invalid `hub.endpoint_quota` `0`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "help: set the interface endpoint quota per VPC of the account, a positive integer \
             (the AWS default is 50)"
        ),
        "{}",
        run.stderr
    );
}
