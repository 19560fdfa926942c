//! Steps on interface VPC endpoints: create and wait for `available`, modify the subnets and
//! groups, delete and wait for `deleted`, replace.

use std::collections::BTreeSet;
use std::sync::Mutex;

use aws_sdk_ec2::types::{ResourceType, VpcEndpointType};
use linkplan_engine::observed::{EndpointState, regional_dns_entry};
use linkplan_engine::provider::{ErrorKind, Outputs, ProviderError};
use linkplan_engine::resource::{Endpoint, Tags, outputs};
use linkplan_engine::step::Action;

use crate::ec2::{add_ec2_tags, is_tagged_for, restore_ec2_tags};
use crate::errors::{is_not_found, send};
use crate::normalize::tag_specification;
use crate::read_ec2::{describe_endpoint, describe_endpoints_of_vpc, endpoint_state};
use crate::sdk_config::Ec2;
use crate::steps::{StepCall, pick};
use crate::wait::{Probe, WaitError, poll, seconds};

/// The maximum length of `ClientToken`, in ASCII characters.
const MAX_CLIENT_TOKEN: usize = 64;

pub async fn apply(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    match call.action() {
        Action::Create => create(call, call.after(pick::endpoint)?, None).await,
        Action::Replace => {
            let old_id = call.existing_id()?;
            let outputs = create(call, call.after(pick::endpoint)?, Some(old_id)).await?;
            delete(call, old_id).await?;
            Ok(outputs)
        }
        Action::Update => {
            let id = call.existing_id()?;
            let before = call.before(pick::endpoint)?;
            let after = call.after(pick::endpoint)?;
            modify(call, id, before, after).await?;
            // NOTE: AWS may still report `available` for a moment after ModifyVpcEndpoint,
            // before the endpoint turns `pending`, so this wait can end early.
            let state = wait_available(call, id, "ModifyVpcEndpoint").await?;
            endpoint_outputs(call, &state)
        }
        Action::Delete => {
            delete(call, call.existing_id()?).await?;
            Ok(Outputs::new())
        }
        Action::Adopt => {
            let id = call.existing_id()?;
            add_ec2_tags(call.ec2()?, id, &call.after(pick::endpoint)?.tags).await?;
            let state = wait_available(call, id, "CreateTags").await?;
            endpoint_outputs(call, &state)
        }
    }
}

pub async fn undo(call: &StepCall<'_>, outputs: &Outputs) -> Result<(), ProviderError> {
    match call.action() {
        Action::Create => delete(call, call.created_id(outputs)?).await,
        Action::Replace => undo_replace(call, outputs).await,
        Action::Update => {
            let id = call.existing_id()?;
            let before = call.before(pick::endpoint)?;
            let after = call.after(pick::endpoint)?;
            modify(call, id, after, before).await?;
            wait_available(call, id, "ModifyVpcEndpoint")
                .await
                .map(|_| ())
        }
        Action::Delete => Err(call.error(
            ErrorKind::Other,
            format!(
                "endpoint {} was deleted and cannot be restored: create it again with a new plan",
                call.existing_id()?
            ),
        )),
        Action::Adopt => {
            let after = call.after(pick::endpoint)?;
            let before_tags = call.before(pick::endpoint).map(|e| e.tags.clone()).ok();
            restore_ec2_tags(
                call.ec2()?,
                call.existing_id()?,
                &after.tags,
                before_tags.as_ref(),
            )
            .await
        }
    }
}

/// Undoes a replace: possible only while the old endpoint still exists, which is the case when
/// the replace failed between creating the new endpoint and deleting the old one.
async fn undo_replace(call: &StepCall<'_>, outputs: &Outputs) -> Result<(), ProviderError> {
    let old_id = call.existing_id()?;
    let new_id = outputs.get(outputs::ID).map(String::as_str);
    let old = describe_endpoint(call.ec2()?, old_id).await?;
    match old {
        Some(old) if !old.is_gone() => match new_id {
            Some(new_id) => delete(call, new_id).await,
            None => Ok(()),
        },
        _ => Err(call.error(
            ErrorKind::Other,
            format!(
                "endpoint {old_id} was replaced by {} and deleted, so it cannot be restored: the \
                 new endpoint was kept; plan again to converge",
                new_id.unwrap_or("a new endpoint")
            ),
        )),
    }
}

/// Finds the endpoint a create or replace step made: live, in the step's VPC, for the step's
/// service, tagged with the stack and the step's address, and not the endpoint being
/// replaced. It does not wait: the endpoint may still be pending.
pub async fn find_created(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let endpoint = call.after(pick::endpoint)?;
    let replaced = match call.action() {
        Action::Replace => call.step().id.as_deref(),
        _ => None,
    };
    let Some(found) = find_tagged(call, endpoint, replaced).await? else {
        return Ok(None);
    };
    let mut outputs = Outputs::from([(outputs::ID.to_string(), found.endpoint_id.clone())]);
    if let Some(entry) = regional_dns_entry(&found.endpoint_id, &found.dns_entries) {
        outputs.insert(outputs::DNS_NAME.to_string(), entry.dns_name.clone());
        outputs.insert(
            outputs::DNS_ZONE_ID.to_string(),
            entry.hosted_zone_id.clone(),
        );
    }
    Ok(Some(outputs))
}

async fn find_tagged(
    call: &StepCall<'_>,
    endpoint: &Endpoint,
    replaced: Option<&str>,
) -> Result<Option<EndpointState>, ProviderError> {
    let candidates = describe_endpoints_of_vpc(call.ec2()?, &endpoint.vpc_id).await?;
    let found = candidates.into_iter().find(|candidate| {
        !candidate.is_gone()
            && candidate.service_name == endpoint.service_name
            && Some(candidate.endpoint_id.as_str()) != replaced
            && is_tagged_for(&candidate.tags, call)
    });
    Ok(found)
}

/// Creates the endpoint (or takes the one an earlier attempt of this step made), waits until
/// it is `available`, and returns its id and regional DNS entry.
async fn create(
    call: &StepCall<'_>,
    endpoint: &Endpoint,
    replaced: Option<&str>,
) -> Result<Outputs, ProviderError> {
    let ec2 = call.ec2()?;
    let token = call.request.token;
    if token.len() > MAX_CLIENT_TOKEN || !token.is_ascii() {
        return Err(call.error(
            ErrorKind::InvalidRequest,
            format!(
                "idempotency token `{token}` is not at most {MAX_CLIENT_TOKEN} ASCII characters"
            ),
        ));
    }

    // A repeated step looks for what its earlier attempt made by tags first: moto 5.2.5 does
    // not de-duplicate on ClientToken, and the lookup works the same on AWS. A first attempt
    // relies on the token alone, which AWS honours when the SDK retries a call whose response
    // was lost. moto would make a second endpoint then.
    let earlier = if call.request.earlier_attempt {
        find_tagged(call, endpoint, replaced).await?
    } else {
        None
    };
    let state = match earlier {
        Some(found) => {
            tracing::info!(endpoint = %found.endpoint_id, "endpoint from an earlier attempt found");
            wait_available(call, &found.endpoint_id, "CreateVpcEndpoint").await?
        }
        None => {
            let group_ids: Vec<String> = known_set(call, &endpoint.security_group_ids)?
                .into_iter()
                .collect();
            if group_ids.is_empty() {
                return Err(no_groups_error(call, &endpoint.service_name));
            }
            let request = ec2
                .client
                .create_vpc_endpoint()
                .vpc_endpoint_type(VpcEndpointType::Interface)
                .vpc_id(&endpoint.vpc_id)
                .service_name(&endpoint.service_name)
                .set_subnet_ids(Some(endpoint.subnet_ids.clone()))
                .set_security_group_ids(Some(group_ids))
                // Sent in every request: the API turns private DNS on when it is left out.
                .private_dns_enabled(endpoint.private_dns_enabled)
                .client_token(token)
                .tag_specifications(tag_specification(ResourceType::VpcEndpoint, &endpoint.tags));
            let answer = send!(ec2.site, "CreateVpcEndpoint", request)?;
            let created = answer.vpc_endpoint().map(endpoint_state);
            let id = created
                .as_ref()
                .map(|e| e.endpoint_id.clone())
                .unwrap_or_default();
            tracing::info!(endpoint = %id, service = %endpoint.service_name, "created endpoint");
            // AWS returns `pending`, so the endpoint is polled. A response that is already
            // `available` with its DNS entries (as from moto) needs no poll.
            match created {
                Some(state) if is_usable(&state) => state,
                _ => wait_available(call, &id, "CreateVpcEndpoint").await?,
            }
        }
    };
    endpoint_outputs(call, &state)
}

/// Reports whether `state` is `available` with a regional DNS entry, which is all a step needs.
fn is_usable(state: &EndpointState) -> bool {
    state.state == "available"
        && regional_dns_entry(&state.endpoint_id, &state.dns_entries).is_some()
}

/// Returns the outputs of an available endpoint: its id and its regional DNS entry.
fn endpoint_outputs(call: &StepCall<'_>, state: &EndpointState) -> Result<Outputs, ProviderError> {
    let Some(entry) = regional_dns_entry(&state.endpoint_id, &state.dns_entries) else {
        let names: Vec<&str> = state
            .dns_entries
            .iter()
            .map(|e| e.dns_name.as_str())
            .collect();
        let listed = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(call.error(
            ErrorKind::Other,
            format!(
                "endpoint {} reports no regional DNS entry (entries: {listed}), so no alias \
                 record can be built for it",
                state.endpoint_id
            ),
        ));
    };
    Ok(Outputs::from([
        (outputs::ID.to_string(), state.endpoint_id.clone()),
        (outputs::DNS_NAME.to_string(), entry.dns_name.clone()),
        (
            outputs::DNS_ZONE_ID.to_string(),
            entry.hosted_zone_id.clone(),
        ),
    ]))
}

/// Returns the state name as the API spells it, for messages.
fn api_state(state: &str) -> &str {
    match state {
        "pendingacceptance" => "pendingAcceptance",
        other => other,
    }
}

/// Polls endpoint `id` until it is `available`.
///
/// `pendingAcceptance` and `pending` are in progress, and so are `partial` and states this
/// code does not know. `rejected`, `failed`, `expired`, `deleting` and `deleted` fail at once
/// as [`ErrorKind::Terminal`], with the state and the endpoint's last error.
async fn wait_available(
    call: &StepCall<'_>,
    id: &str,
    operation: &str,
) -> Result<EndpointState, ProviderError> {
    let ec2 = call.ec2()?;
    let last_state = Mutex::new(String::new());
    let outcome = poll(call.request.wait_timeout, call.request.progress, || async {
        let Some(state) = describe_endpoint(ec2, id).await? else {
            // EC2 is eventually consistent: a new endpoint may not be listed yet.
            return Ok(Probe::Pending(format!("endpoint {id} not listed yet")));
        };
        *last_state.lock().expect("no panic while held") = state.state.clone();
        match state.state.as_str() {
            "available" => Ok(Probe::Ready(state)),
            "rejected" | "failed" | "expired" | "deleting" | "deleted" => {
                let last_error = state
                    .last_error
                    .as_deref()
                    .unwrap_or("no last error reported");
                Err(ec2.site.failure(
                    ErrorKind::Terminal,
                    operation,
                    format!(
                        "endpoint {id} is {}, a state it cannot leave: {last_error}",
                        api_state(&state.state)
                    ),
                ))
            }
            other => Ok(Probe::Pending(format!(
                "endpoint {id} {}",
                api_state(other)
            ))),
        }
    })
    .await;

    match outcome {
        Ok(state) => Ok(state),
        Err(WaitError::Failed(error)) => Err(error),
        Err(WaitError::TimedOut { waited, .. }) => {
            let state = last_state.into_inner().expect("no panic while held");
            let message = if state == "pendingacceptance" {
                format!(
                    "endpoint {id} is still pendingAcceptance after {}: it is waiting for the \
                     service provider to accept the connection; ask the provider to accept it, \
                     or raise the wait timeout",
                    seconds(waited)
                )
            } else if state.is_empty() {
                format!(
                    "endpoint {id} was not listed by DescribeVpcEndpoints within {}",
                    seconds(waited)
                )
            } else {
                format!(
                    "endpoint {id} is still {} after {}, not available",
                    api_state(&state),
                    seconds(waited)
                )
            };
            Err(ec2.site.failure(ErrorKind::Timeout, operation, message))
        }
    }
}

/// Changes endpoint `id` from `from` to `to` in one ModifyVpcEndpoint call: subnets and groups
/// added and removed as set differences, and private DNS when it differs. Tags follow in
/// CreateTags and DeleteTags calls.
async fn modify(
    call: &StepCall<'_>,
    id: &str,
    from: &Endpoint,
    to: &Endpoint,
) -> Result<(), ProviderError> {
    let ec2 = call.ec2()?;
    let from_groups = known_set(call, &from.security_group_ids)?;
    let to_groups = known_set(call, &to.security_group_ids)?;
    if to_groups.is_empty() {
        return Err(no_groups_error(call, id));
    }
    let from_subnets: BTreeSet<String> = from.subnet_ids.iter().cloned().collect();
    let to_subnets: BTreeSet<String> = to.subnet_ids.iter().cloned().collect();

    let add_subnets = difference(&to_subnets, &from_subnets);
    let remove_subnets = difference(&from_subnets, &to_subnets);
    let add_groups = difference(&to_groups, &from_groups);
    let remove_groups = difference(&from_groups, &to_groups);
    let private_dns =
        (from.private_dns_enabled != to.private_dns_enabled).then_some(to.private_dns_enabled);

    let changes = add_subnets.is_some()
        || remove_subnets.is_some()
        || add_groups.is_some()
        || remove_groups.is_some()
        || private_dns.is_some();
    if changes {
        let request = ec2
            .client
            .modify_vpc_endpoint()
            .vpc_endpoint_id(id)
            .set_add_subnet_ids(add_subnets)
            .set_remove_subnet_ids(remove_subnets)
            .set_add_security_group_ids(add_groups)
            .set_remove_security_group_ids(remove_groups)
            .set_private_dns_enabled(private_dns);
        send!(ec2.site, "ModifyVpcEndpoint", request)?;
        tracing::info!(endpoint = id, "modified endpoint");
    }

    change_tags(ec2, id, &from.tags, &to.tags).await
}

fn no_groups_error(call: &StepCall<'_>, endpoint: &str) -> ProviderError {
    call.error(
        ErrorKind::InvalidRequest,
        format!(
            "endpoint {endpoint} would have no security group, and AWS would attach the VPC's \
             default group: give it at least one group"
        ),
    )
}

/// Changes the tags of EC2 object `id` from `from` to `to`.
async fn change_tags(ec2: &Ec2, id: &str, from: &Tags, to: &Tags) -> Result<(), ProviderError> {
    let changed: Tags = to
        .iter()
        .filter(|(k, v)| from.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    add_ec2_tags(ec2, id, &changed).await?;
    let removed: Vec<&String> = from.keys().filter(|k| !to.contains_key(*k)).collect();
    if removed.is_empty() {
        return Ok(());
    }
    let keys = removed
        .iter()
        .map(|k| aws_sdk_ec2::types::Tag::builder().key(*k).build())
        .collect();
    let request = ec2.client.delete_tags().resources(id).set_tags(Some(keys));
    send!(ec2.site, "DeleteTags", request)?;
    Ok(())
}

fn known_set(
    call: &StepCall<'_>,
    values: &[linkplan_engine::resource::Value],
) -> Result<BTreeSet<String>, ProviderError> {
    values
        .iter()
        .map(|v| call.known(v).map(str::to_string))
        .collect()
}

/// Returns the elements of `a` not in `b`, or `None` when there are none.
fn difference(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Option<Vec<String>> {
    let only_a: Vec<String> = a.difference(b).cloned().collect();
    (!only_a.is_empty()).then_some(only_a)
}

/// Deletes endpoint `id` and waits until it reads `deleted` or is no longer listed. Deleted
/// endpoints stay listed for a while, and in moto 5.2.5 for good.
async fn delete(call: &StepCall<'_>, id: &str) -> Result<(), ProviderError> {
    let ec2 = call.ec2()?;
    let request = ec2.client.delete_vpc_endpoints().vpc_endpoint_ids(id);
    let answer = match send!(ec2.site, "DeleteVpcEndpoints", request) {
        Ok(answer) => answer,
        Err(error) if is_not_found(&error) => {
            tracing::info!(endpoint = id, "endpoint already deleted");
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    // DeleteVpcEndpoints reports per-endpoint failures in its response rather than as an error.
    if let Some(item) = answer
        .unsuccessful()
        .iter()
        .find(|i| i.resource_id() == Some(id))
    {
        let code = item.error().and_then(|e| e.code()).unwrap_or_default();
        let message = item.error().and_then(|e| e.message()).unwrap_or_default();
        if !code.ends_with("NotFound") {
            let mut error = ec2.site.failure(
                crate::errors::kind_of(Some(code), None),
                "DeleteVpcEndpoints",
                format!("endpoint {id} was not deleted: {message}"),
            );
            error.code = Some(code.to_string()).filter(|c| !c.is_empty());
            return Err(error);
        }
    }
    tracing::info!(endpoint = id, "deleting endpoint");

    let outcome = poll(call.request.wait_timeout, call.request.progress, || async {
        match describe_endpoint(ec2, id).await? {
            None => Ok(Probe::Ready(())),
            Some(state) if state.state == "deleted" => Ok(Probe::Ready(())),
            Some(state) => Ok(Probe::Pending(format!(
                "endpoint {id} {}",
                api_state(&state.state)
            ))),
        }
    })
    .await;
    match outcome {
        Ok(()) => Ok(()),
        Err(WaitError::Failed(error)) => Err(error),
        Err(WaitError::TimedOut { status, waited }) => Err(ec2.site.failure(
            ErrorKind::Timeout,
            "DeleteVpcEndpoints",
            format!("{status} after {}, not yet deleted", seconds(waited)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn difference_lists_only_new_items() {
        let before = set(&["subnet-a", "subnet-b"]);
        let after = set(&["subnet-b", "subnet-c"]);
        assert_eq!(
            difference(&after, &before),
            Some(vec!["subnet-c".to_string()])
        );
        assert_eq!(
            difference(&before, &after),
            Some(vec!["subnet-a".to_string()])
        );
        assert_eq!(difference(&before, &before), None);
    }

    #[test]
    fn api_state_restores_camel_case() {
        assert_eq!(api_state("pendingacceptance"), "pendingAcceptance");
        assert_eq!(api_state("available"), "available");
    }
}
