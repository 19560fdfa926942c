//! The IAM permissions linkplan needs, as data: every AWS API operation the provider calls and
//! the IAM actions that operation requires.
//!
//! `linkplan iam-policy` prints [`policy`], and `tests/iam_policy.rs` scans this crate's sources
//! for SDK operation calls and fails when one is missing from [`OPERATIONS`] or when an entry
//! is no longer called. A new call therefore needs a new entry here.

use serde::Serialize;
use serde_json::{Value, json};

/// An AWS service whose API linkplan calls, with the IAM prefix of its actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    Ec2,
    Route53,
    Sts,
    S3,
}

impl Service {
    /// Returns the prefix of the service's IAM actions, as in `ec2:DescribeVpcs`.
    pub fn prefix(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Route53 => "route53",
            Service::Sts => "sts",
            Service::S3 => "s3",
        }
    }

    fn statement_id(self) -> &'static str {
        match self {
            Service::Ec2 => "LinkplanEc2",
            Service::Route53 => "LinkplanRoute53",
            Service::Sts => "LinkplanSts",
            Service::S3 => "LinkplanStateBucket",
        }
    }
}

/// One API operation the provider calls.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub service: Service,
    /// The operation name of the API, as in `DescribeVpcs`. The SDK's fluent builder for it is
    /// the same name in snake case (`describe_vpcs`).
    pub name: &'static str,
}

impl Operation {
    /// Returns the IAM actions, without the service prefix, that the operation requires: the
    /// operation name itself unless [`ACTION_EXCEPTIONS`] lists others.
    pub fn actions(&self) -> Vec<&'static str> {
        ACTION_EXCEPTIONS
            .iter()
            .find(|(service, name, _)| *service == self.service && *name == self.name)
            .map(|(_, _, actions)| actions.to_vec())
            .unwrap_or_else(|| vec![self.name])
    }
}

const fn op(service: Service, name: &'static str) -> Operation {
    Operation { service, name }
}

use Service::{Ec2, Route53, S3, Sts};

/// Every operation linkplan calls: `plan` reads, `apply` and `rollback` write, `init`
/// discovers a VPC, `verify` reads the endpoints' interfaces, and the S3 backend keeps locks
/// and journals.
pub const OPERATIONS: &[Operation] = &[
    // EC2: reads.
    op(Ec2, "DescribeAvailabilityZones"),
    op(Ec2, "DescribeDhcpOptions"),
    op(Ec2, "DescribeNetworkInterfaces"),
    op(Ec2, "DescribeRouteTables"),
    op(Ec2, "DescribeSecurityGroups"),
    op(Ec2, "DescribeSubnets"),
    op(Ec2, "DescribeVpcAttribute"),
    op(Ec2, "DescribeVpcEndpointServices"),
    op(Ec2, "DescribeVpcEndpoints"),
    op(Ec2, "DescribeVpcPeeringConnections"),
    op(Ec2, "DescribeVpcs"),
    // EC2: steps of apply and their undo.
    op(Ec2, "AcceptVpcPeeringConnection"),
    op(Ec2, "AuthorizeSecurityGroupIngress"),
    op(Ec2, "CreateRoute"),
    op(Ec2, "CreateSecurityGroup"),
    op(Ec2, "CreateTags"),
    op(Ec2, "CreateVpcEndpoint"),
    op(Ec2, "CreateVpcPeeringConnection"),
    op(Ec2, "DeleteRoute"),
    op(Ec2, "DeleteSecurityGroup"),
    op(Ec2, "DeleteTags"),
    op(Ec2, "DeleteVpcEndpoints"),
    op(Ec2, "DeleteVpcPeeringConnection"),
    op(Ec2, "ModifyVpcAttribute"),
    op(Ec2, "ModifyVpcEndpoint"),
    op(Ec2, "RevokeSecurityGroupIngress"),
    // Route 53: reads.
    op(Route53, "GetChange"),
    op(Route53, "GetHostedZone"),
    op(Route53, "ListHostedZonesByName"),
    op(Route53, "ListHostedZonesByVPC"),
    op(Route53, "ListResourceRecordSets"),
    op(Route53, "ListTagsForResources"),
    op(Route53, "ListVPCAssociationAuthorizations"),
    // Route 53: steps. Associating a VPC with a private zone also needs ec2:DescribeVpcs on
    // that VPC, which the EC2 statement gives.
    op(Route53, "AssociateVPCWithHostedZone"),
    op(Route53, "ChangeResourceRecordSets"),
    op(Route53, "ChangeTagsForResource"),
    op(Route53, "CreateHostedZone"),
    op(Route53, "CreateVPCAssociationAuthorization"),
    op(Route53, "DeleteHostedZone"),
    op(Route53, "DeleteVPCAssociationAuthorization"),
    op(Route53, "DisassociateVPCFromHostedZone"),
    // STS: the account behind each set of credentials.
    op(Sts, "GetCallerIdentity"),
    // S3: locks, journals and applied markers of the S3 backend.
    op(S3, "DeleteObject"),
    op(S3, "GetObject"),
    op(S3, "ListObjectsV2"),
    op(S3, "PutObject"),
];

/// Operations the SDK makes on linkplan's behalf, which no fluent call in the sources shows:
/// `AssumeRole` for a `role_arn` of the config, made by the SDK's credentials provider.
pub const SDK_OPERATIONS: &[Operation] = &[op(Sts, "AssumeRole")];

/// Operations whose IAM actions are not named after them, as `(service, operation, actions)`.
/// `ListObjectsV2` is authorized as `s3:ListBucket` on the bucket.
pub const ACTION_EXCEPTIONS: &[(Service, &str, &[&str])] =
    &[(S3, "ListObjectsV2", &["ListBucket"])];

/// Options of the printed policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOptions {
    /// The bucket of the S3 backend, which scopes the S3 statement to that bucket and its
    /// objects. `None` allows every bucket.
    pub state_bucket: Option<String>,
}

/// Returns the IAM actions of `service`, prefixed, sorted and without repeats.
pub fn actions(service: Service) -> Vec<String> {
    let mut actions: Vec<String> = OPERATIONS
        .iter()
        .chain(SDK_OPERATIONS)
        .filter(|operation| operation.service == service)
        .flat_map(|operation| operation.actions())
        .map(|action| format!("{}:{action}", service.prefix()))
        .collect();
    actions.sort();
    actions.dedup();
    actions
}

/// An IAM policy document, serialized with its keys in the order IAM's own examples use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    pub version: &'static str,
    pub statement: Vec<Statement>,
}

/// One `Allow` statement of a [`Policy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: &'static str,
    pub effect: &'static str,
    /// Prefixed actions, such as `ec2:DescribeVpcs`, sorted.
    pub action: Vec<String>,
    /// `*` or a list of ARNs.
    pub resource: Value,
}

/// Builds the identity-based policy that allows every action of [`OPERATIONS`] and
/// [`SDK_OPERATIONS`], one statement per service.
///
/// EC2's describe calls and Route 53's list calls support no resource-level permissions, so
/// the EC2, Route 53 and STS statements apply to every resource.
pub fn policy(options: &PolicyOptions) -> Policy {
    let services = [Service::Ec2, Service::Route53, Service::Sts, Service::S3];
    let statement = services
        .into_iter()
        .filter_map(|service| {
            let action = actions(service);
            (!action.is_empty()).then(|| Statement {
                sid: service.statement_id(),
                effect: "Allow",
                action,
                resource: resources(service, options),
            })
        })
        .collect();
    Policy {
        version: "2012-10-17",
        statement,
    }
}

fn resources(service: Service, options: &PolicyOptions) -> Value {
    match (service, &options.state_bucket) {
        (Service::S3, Some(bucket)) => json!([
            format!("arn:aws:s3:::{bucket}"),
            format!("arn:aws:s3:::{bucket}/*")
        ]),
        _ => json!("*"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_unique() {
        let mut names: Vec<(Service, &str)> = OPERATIONS
            .iter()
            .chain(SDK_OPERATIONS)
            .map(|operation| (operation.service, operation.name))
            .collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "an operation is listed twice");
    }

    #[test]
    fn policy_has_one_statement_per_service() {
        let policy = policy(&PolicyOptions::default());
        let sids: Vec<&str> = policy.statement.iter().map(|s| s.sid).collect();
        assert_eq!(
            sids,
            [
                "LinkplanEc2",
                "LinkplanRoute53",
                "LinkplanSts",
                "LinkplanStateBucket"
            ]
        );
    }

    #[test]
    fn policy_keys_keep_iam_order() {
        let text = serde_json::to_string(&policy(&PolicyOptions::default())).unwrap();
        assert!(
            text.starts_with(r#"{"Version":"2012-10-17","Statement":[{"Sid":"#),
            "{text}"
        );
    }

    #[test]
    fn list_objects_needs_list_bucket() {
        let s3 = actions(Service::S3);
        assert!(s3.contains(&"s3:ListBucket".to_string()), "{s3:?}");
        assert!(!s3.contains(&"s3:ListObjectsV2".to_string()), "{s3:?}");
    }

    #[test]
    fn assume_role_is_allowed() {
        assert!(actions(Service::Sts).contains(&"sts:AssumeRole".to_string()));
    }

    #[test]
    fn state_bucket_scopes_s3_resources() {
        let options = PolicyOptions {
            state_bucket: Some("linkplan-state".to_string()),
        };
        assert_eq!(
            resources(Service::S3, &options),
            json!([
                "arn:aws:s3:::linkplan-state",
                "arn:aws:s3:::linkplan-state/*"
            ])
        );
        assert_eq!(resources(Service::Ec2, &options), json!("*"));
    }
}
