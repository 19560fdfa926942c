//! A synthetic stack of any size: a hub in us-east-1 and spokes spread over four regions, each
//! spoke with a /24 of its own, and the live state before its first apply.

use linkplan_engine::observed::Observed;
use linkplan_engine::stack::Stack;

const SPOKE_REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "us-west-2", "ap-southeast-2"];

/// Returns the config text of a hub with `spokes` spokes, each with a /24 of its own.
pub fn config_text(spokes: usize) -> String {
    let mut text = String::from(
        "name = \"scale\"\n\n[hub]\nregion = \"us-east-1\"\nvpc_id = \"vpc-f0000000000000000\"\n\
         subnet_ids = [\"subnet-a0000000000000000\", \"subnet-b0000000000000000\"]\n\
         route_table_ids = [\"rtb-f0000000000000000\"]\n",
    );
    for index in 0..spokes {
        let region = SPOKE_REGIONS[index % SPOKE_REGIONS.len()];
        text.push_str(&format!(
            "\n[[spoke]]\nname = \"spoke{index}\"\nregion = \"{region}\"\n\
             vpc_id = \"vpc-{index:017x}\"\nroute_table_ids = [\"rtb-{index:017x}\"]\n"
        ));
    }
    text
}

/// Returns the CIDR of spoke `index`: 10.1.0.0/24, 10.1.1.0/24, and so on, after the hub's
/// 10.0.0.0/16.
fn spoke_cidr(index: usize) -> String {
    format!("10.{}.{}.0/24", index / 256 + 1, index % 256)
}

/// Returns the live state of `stack` before its first apply: every VPC, subnet, route table
/// and service exists, in one account, and nothing the stack makes does.
pub fn observed_before_apply(stack: &Stack) -> Observed {
    let mut observed = super::empty_hub(stack);
    observed.identities = stack
        .contexts()
        .into_iter()
        .map(|context| (context, super::identity(super::HUB_ACCOUNT)))
        .collect();
    for table in &stack.hub.route_table_ids {
        let state = super::route_table(table, &stack.hub.vpc_id, &[]);
        observed.route_tables.insert(table.clone(), Some(state));
    }
    for (index, spoke) in stack.spokes.iter().enumerate() {
        let cidr = spoke_cidr(index);
        let vpc = super::vpc(&spoke.vpc_id, &spoke.region, super::HUB_ACCOUNT, &[&cidr]);
        observed.vpcs.insert(spoke.vpc_id.clone(), Some(vpc));
        for table in &spoke.route_table_ids {
            let state = super::route_table(table, &spoke.vpc_id, &[]);
            observed.route_tables.insert(table.clone(), Some(state));
        }
    }
    observed
}
