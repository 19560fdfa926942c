//! Steps on VPC attributes, security groups and ingress rules, and the tagging of adopted EC2
//! objects.

use std::sync::Mutex;

use aws_sdk_ec2::operation::create_security_group::CreateSecurityGroupError;
use aws_sdk_ec2::types::{AttributeBooleanValue, IpPermission, IpRange, Ipv6Range, ResourceType};
use linkplan_engine::provider::{ErrorKind, Outputs, ProviderError};
use linkplan_engine::resource::{
    IngressRule, SecurityGroup, TAG_ADDRESS, TAG_STACK, Tags, VpcDnsAttribute,
};
use linkplan_engine::step::Action;

use crate::errors::{has_code, is_not_found, send, send_without_blind_retry};
use crate::normalize::{filter, tag_specification, to_ec2_tags};
use crate::read_ec2::{flatten_permission, security_group_state};
use crate::sdk_config::Ec2;
use crate::steps::{StepCall, id_output, pick};
use crate::wait::{Probe, WaitError, poll, seconds};

/// Calls of a create without an idempotency token: the first, and the ones after a transient
/// failure when a re-read found nothing.
const UNTOKENED_CREATE_CALLS: u32 = 3;

// ---- VPC attributes -------------------------------------------------------------------------

pub async fn apply_vpc_attribute(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    if call.action() != Action::Update {
        return Err(call.unsupported("apply"));
    }
    let after = call.after(pick::vpc_attribute)?;
    set_vpc_attribute(call.ec2()?, &after.vpc_id, after.attribute, after.enabled).await?;
    Ok(Outputs::new())
}

pub async fn undo_vpc_attribute(call: &StepCall<'_>) -> Result<(), ProviderError> {
    if call.action() != Action::Update {
        return Err(call.unsupported("undo"));
    }
    let before = call.before(pick::vpc_attribute)?;
    set_vpc_attribute(
        call.ec2()?,
        &before.vpc_id,
        before.attribute,
        before.enabled,
    )
    .await
}

/// Sets one DNS attribute. ModifyVpcAttribute takes exactly one attribute per call: AWS rejects
/// a request with both (moto 5.2.5 accepts it).
async fn set_vpc_attribute(
    ec2: &Ec2,
    vpc_id: &str,
    attribute: VpcDnsAttribute,
    enabled: bool,
) -> Result<(), ProviderError> {
    let value = AttributeBooleanValue::builder().value(enabled).build();
    let request = ec2.client.modify_vpc_attribute().vpc_id(vpc_id);
    let request = match attribute {
        VpcDnsAttribute::DnsSupport => request.enable_dns_support(value),
        VpcDnsAttribute::DnsHostnames => request.enable_dns_hostnames(value),
    };
    send!(ec2.site, "ModifyVpcAttribute", request)?;
    tracing::info!(
        vpc = vpc_id,
        attribute = attribute.api_name(),
        enabled,
        "set VPC attribute"
    );
    Ok(())
}

// ---- Security groups ------------------------------------------------------------------------

pub async fn apply_security_group(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    match call.action() {
        Action::Create => {
            let group = call.after(pick::security_group)?;
            let id = create_security_group(call, group).await?;
            Ok(id_output(&id))
        }
        Action::Delete => {
            delete_security_group(call, call.existing_id()?).await?;
            Ok(Outputs::new())
        }
        Action::Adopt => {
            let group = call.after(pick::security_group)?;
            let id = call.existing_id()?;
            add_ec2_tags(call.ec2()?, id, &group.tags).await?;
            Ok(id_output(id))
        }
        Action::Update | Action::Replace => Err(call.unsupported("apply")),
    }
}

pub async fn undo_security_group(
    call: &StepCall<'_>,
    outputs: &Outputs,
) -> Result<(), ProviderError> {
    match call.action() {
        Action::Create => delete_security_group(call, call.created_id(outputs)?).await,
        Action::Adopt => {
            let before_tags = call
                .before(pick::security_group)
                .map(|g| g.tags.clone())
                .ok();
            let after = call.after(pick::security_group)?;
            restore_ec2_tags(
                call.ec2()?,
                call.existing_id()?,
                &after.tags,
                before_tags.as_ref(),
            )
            .await
        }
        Action::Delete => Err(call.error(
            ErrorKind::Other,
            format!(
                "security group {} was deleted and cannot be restored: create it again with a \
                 new plan",
                call.existing_id()?
            ),
        )),
        Action::Update | Action::Replace => Err(call.unsupported("undo")),
    }
}

pub async fn find_security_group(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let group = call.after(pick::security_group)?;
    let found = find_tagged_group(call, &group.vpc_id).await?;
    Ok(found.map(|id| id_output(&id)))
}

/// Creates the group, or, in a repeated step, finds the one an earlier attempt created.
///
/// CreateSecurityGroup takes no idempotency token, so it is retried only when throttled. After
/// a timeout or a connection error the group is looked up by its tags before calling again.
async fn create_security_group(
    call: &StepCall<'_>,
    group: &SecurityGroup,
) -> Result<String, ProviderError> {
    if call.request.earlier_attempt
        && let Some(id) = find_tagged_group(call, &group.vpc_id).await?
    {
        tracing::info!(group = %id, "security group from an earlier attempt found by its tags");
        return Ok(id);
    }
    let ec2 = call.ec2()?;
    let mut calls = 0;
    loop {
        calls += 1;
        let request = ec2
            .client
            .create_security_group()
            .group_name(&group.group_name)
            .description(&group.description)
            .vpc_id(&group.vpc_id)
            .tag_specifications(tag_specification(ResourceType::SecurityGroup, &group.tags));
        let error = match send_without_blind_retry!(
            ec2.site,
            "CreateSecurityGroup",
            CreateSecurityGroupError,
            request
        ) {
            Ok(answer) => {
                let id = answer.group_id().unwrap_or_default().to_string();
                tracing::info!(group = %id, "created security group");
                return Ok(id);
            }
            Err(error) => error,
        };

        if has_code(&error, "InvalidGroup.Duplicate") {
            return adopt_duplicate_group(call, group, error).await;
        }
        let unknown_outcome = matches!(error.kind, ErrorKind::Transient | ErrorKind::Timeout);
        if !unknown_outcome || calls >= UNTOKENED_CREATE_CALLS {
            return Err(error);
        }
        tracing::warn!("CreateSecurityGroup outcome unknown, re-reading before retrying: {error}");
        if let Some(id) = find_tagged_group(call, &group.vpc_id).await? {
            return Ok(id);
        }
    }
}

/// Handles `InvalidGroup.Duplicate`: the name is taken in the VPC. A group with this step's
/// tags is this step's own; any other is a conflict.
async fn adopt_duplicate_group(
    call: &StepCall<'_>,
    group: &SecurityGroup,
    error: ProviderError,
) -> Result<String, ProviderError> {
    let ec2 = call.ec2()?;
    let request = ec2.client.describe_security_groups().set_filters(Some(vec![
        filter("vpc-id", [group.vpc_id.as_str()]),
        filter("group-name", [group.group_name.as_str()]),
    ]));
    let answer = send!(ec2.site, "DescribeSecurityGroups", request)?;
    let existing = answer.security_groups().first().map(security_group_state);
    match existing {
        Some(existing) if is_tagged_for(&existing.tags, call) => Ok(existing.group_id),
        Some(existing) => Err(ProviderError {
            message: format!(
                "security group `{}` already exists in {} as {} and is not tagged as {}: rename \
                 the group in the config, or delete {}",
                group.group_name,
                group.vpc_id,
                existing.group_id,
                call.step().address,
                existing.group_id
            ),
            ..error
        }),
        None => Err(error),
    }
}

async fn find_tagged_group(
    call: &StepCall<'_>,
    vpc_id: &str,
) -> Result<Option<String>, ProviderError> {
    let ec2 = call.ec2()?;
    let request = ec2.client.describe_security_groups().set_filters(Some(vec![
        filter("vpc-id", [vpc_id]),
        filter(&format!("tag:{TAG_STACK}"), [call.request.stack]),
        filter(
            &format!("tag:{TAG_ADDRESS}"),
            [call.step().address.as_str()],
        ),
    ]));
    let answer = send!(ec2.site, "DescribeSecurityGroups", request)?;
    let found = answer
        .security_groups()
        .iter()
        .map(security_group_state)
        .find(|group| is_tagged_for(&group.tags, call));
    Ok(found.map(|group| group.group_id))
}

/// Reports whether `tags` mark the object as this step's: the stack's and the address's tags.
pub fn is_tagged_for(tags: &Tags, call: &StepCall<'_>) -> bool {
    tags.get(TAG_STACK).map(String::as_str) == Some(call.request.stack)
        && tags.get(TAG_ADDRESS).map(String::as_str) == Some(call.step().address.as_str())
}

/// Deletes group `id`, retrying while it is still in use until the step's wait timeout.
///
/// An endpoint's network interfaces keep the group for a while after the endpoint reads
/// `deleted`, and EC2 returns `DependencyViolation` until they are gone.
async fn delete_security_group(call: &StepCall<'_>, id: &str) -> Result<(), ProviderError> {
    let ec2 = call.ec2()?;
    // The last DependencyViolation, whose evidence the timeout error keeps.
    let last_error: Mutex<Option<ProviderError>> = Mutex::new(None);
    let outcome = poll(call.request.wait_timeout, call.request.progress, || {
        let request = ec2.client.delete_security_group().group_id(id);
        let last_error = &last_error;
        async move {
            match send!(ec2.site, "DeleteSecurityGroup", request) {
                Ok(_) => {
                    tracing::info!(group = id, "deleted security group");
                    Ok(Probe::Ready(()))
                }
                Err(error) if is_not_found(&error) => {
                    tracing::info!(group = id, "security group already deleted");
                    Ok(Probe::Ready(()))
                }
                Err(error) if has_code(&error, "DependencyViolation") => {
                    *last_error.lock().expect("no panic while held") = Some(error);
                    Ok(Probe::Pending(format!("security group {id} still in use")))
                }
                Err(error) => Err(error),
            }
        }
    })
    .await;
    match outcome {
        Ok(()) => Ok(()),
        Err(WaitError::Failed(error)) => Err(error),
        Err(WaitError::TimedOut { waited, .. }) => {
            let last_error = last_error.into_inner().expect("no panic while held");
            let error = last_error.unwrap_or_else(|| {
                ec2.site
                    .failure(ErrorKind::Timeout, "DeleteSecurityGroup", String::new())
            });
            Err(ProviderError {
                kind: ErrorKind::Timeout,
                message: format!(
                    "security group {id} was still in use after {}: {} (network interfaces of \
                     deleted endpoints release it a few minutes after the endpoint is deleted; \
                     run the undo again later)",
                    seconds(waited),
                    error.message
                ),
                ..error
            })
        }
    }
}

// ---- Ingress rules --------------------------------------------------------------------------

pub async fn apply_ingress_rule(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    match call.action() {
        Action::Create => authorize_ingress(call, call.after(pick::ingress_rule)?).await?,
        Action::Delete => revoke_ingress(call, call.before(pick::ingress_rule)?).await?,
        _ => return Err(call.unsupported("apply")),
    }
    Ok(Outputs::new())
}

pub async fn undo_ingress_rule(call: &StepCall<'_>) -> Result<(), ProviderError> {
    match call.action() {
        Action::Create => revoke_ingress(call, call.after(pick::ingress_rule)?).await,
        Action::Delete => authorize_ingress(call, call.before(pick::ingress_rule)?).await,
        _ => Err(call.unsupported("undo")),
    }
}

pub async fn find_ingress_rule(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let rule = call.after(pick::ingress_rule)?;
    let group_id = call.known(&rule.group_id)?;
    let ec2 = call.ec2()?;
    let request = ec2.client.describe_security_groups().group_ids(group_id);
    let answer = match send!(ec2.site, "DescribeSecurityGroups", request) {
        Ok(answer) => answer,
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let wanted = flatten_permission(&permission(rule));
    let present = answer.security_groups().iter().any(|group| {
        let existing: Vec<_> = group
            .ip_permissions()
            .iter()
            .flat_map(flatten_permission)
            .collect();
        wanted.iter().all(|w| existing.contains(w))
    });
    Ok(present.then(Outputs::new))
}

fn permission(rule: &IngressRule) -> IpPermission {
    let port = i32::from(rule.port);
    let builder = IpPermission::builder()
        .ip_protocol(&rule.protocol)
        .from_port(port)
        .to_port(port);
    let description = (!rule.description.is_empty()).then(|| rule.description.clone());
    // An IPv6 block goes in Ipv6Ranges: EC2 rejects it in IpRanges.
    if rule.cidr.contains(':') {
        let range = Ipv6Range::builder()
            .cidr_ipv6(&rule.cidr)
            .set_description(description)
            .build();
        builder.ipv6_ranges(range).build()
    } else {
        let range = IpRange::builder()
            .cidr_ip(&rule.cidr)
            .set_description(description)
            .build();
        builder.ip_ranges(range).build()
    }
}

async fn authorize_ingress(call: &StepCall<'_>, rule: &IngressRule) -> Result<(), ProviderError> {
    let ec2 = call.ec2()?;
    let group_id = call.known(&rule.group_id)?;
    let request = ec2
        .client
        .authorize_security_group_ingress()
        .group_id(group_id)
        .ip_permissions(permission(rule));
    match send!(ec2.site, "AuthorizeSecurityGroupIngress", request) {
        Ok(_) => {
            tracing::info!(
                group = group_id,
                cidr = %rule.cidr,
                port = rule.port,
                "added ingress rule"
            );
            Ok(())
        }
        Err(error) if has_code(&error, "InvalidPermission.Duplicate") => {
            tracing::info!(group = group_id, cidr = %rule.cidr, "ingress rule already present");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

async fn revoke_ingress(call: &StepCall<'_>, rule: &IngressRule) -> Result<(), ProviderError> {
    let ec2 = call.ec2()?;
    let group_id = call.known(&rule.group_id)?;
    let request = ec2
        .client
        .revoke_security_group_ingress()
        .group_id(group_id)
        .ip_permissions(permission(rule));
    match send!(ec2.site, "RevokeSecurityGroupIngress", request) {
        Ok(_) => {
            tracing::info!(group = group_id, cidr = %rule.cidr, "removed ingress rule");
            Ok(())
        }
        Err(error) if is_not_found(&error) => {
            tracing::info!(group = group_id, cidr = %rule.cidr, "ingress rule already absent");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

// ---- Tags of adopted EC2 objects ------------------------------------------------------------

/// Adds `tags` to EC2 object `id`.
pub async fn add_ec2_tags(ec2: &Ec2, id: &str, tags: &Tags) -> Result<(), ProviderError> {
    if tags.is_empty() {
        return Ok(());
    }
    let request = ec2
        .client
        .create_tags()
        .resources(id)
        .set_tags(Some(to_ec2_tags(tags)));
    send!(ec2.site, "CreateTags", request)?;
    Ok(())
}

/// Reverses [`add_ec2_tags`]: removes the keys of `added` that `before` did not have, and puts
/// back the old value of those it had.
pub async fn restore_ec2_tags(
    ec2: &Ec2,
    id: &str,
    added: &Tags,
    before: Option<&Tags>,
) -> Result<(), ProviderError> {
    let empty = Tags::new();
    let before = before.unwrap_or(&empty);
    let (restore, remove): (Vec<_>, Vec<_>) = added
        .keys()
        .partition(|key| before.contains_key(key.as_str()));
    if !remove.is_empty() {
        let keys = remove
            .iter()
            .map(|key| aws_sdk_ec2::types::Tag::builder().key(key.as_str()).build())
            .collect();
        let request = ec2.client.delete_tags().resources(id).set_tags(Some(keys));
        match send!(ec2.site, "DeleteTags", request) {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    let old: Tags = restore
        .into_iter()
        .map(|key| (key.clone(), before[key].clone()))
        .collect();
    add_ec2_tags(ec2, id, &old).await
}
