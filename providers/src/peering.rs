//! Steps on VPC peering: the request from the hub's region, the acceptance from the spoke's
//! region and account, and the routes over the connection.

use std::sync::Mutex;

use aws_sdk_ec2::operation::create_vpc_peering_connection::CreateVpcPeeringConnectionError;
use aws_sdk_ec2::types::ResourceType;
use linkplan_engine::observed::PeeringState;
use linkplan_engine::provider::{ErrorKind, Outputs, ProviderError};
use linkplan_engine::resource::{PeeringConnection, Route, TAG_ADDRESS, TAG_STACK};
use linkplan_engine::step::Action;

use crate::ec2::{add_ec2_tags, is_tagged_for, restore_ec2_tags};
use crate::errors::{has_code, is_not_found, send, send_without_blind_retry};
use crate::normalize::{filter, tag_specification};
use crate::read_ec2::{describe_peering, peering_state, route_table_state};
use crate::sdk_config::Ec2;
use crate::steps::{StepCall, id_output, pick};
use crate::wait::{Probe, WaitError, poll, seconds};

/// Calls of CreateVpcPeeringConnection, which takes no idempotency token: the first, and the
/// ones after a transient failure when a re-read found nothing.
const CREATE_PEERING_CALLS: u32 = 3;

// ---- Peering connections --------------------------------------------------------------------

pub async fn apply_connection(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    match call.action() {
        Action::Create => {
            let peering = call.after(pick::peering_connection)?;
            let id = request_peering(call, peering).await?;
            wait_requested(call, &id).await?;
            Ok(id_output(&id))
        }
        Action::Delete => {
            delete_peering(call, call.existing_id()?).await?;
            Ok(Outputs::new())
        }
        Action::Adopt => {
            let id = call.existing_id()?;
            add_ec2_tags(call.ec2()?, id, &call.after(pick::peering_connection)?.tags).await?;
            Ok(id_output(id))
        }
        Action::Update | Action::Replace => Err(call.unsupported("apply")),
    }
}

pub async fn undo_connection(call: &StepCall<'_>, outputs: &Outputs) -> Result<(), ProviderError> {
    match call.action() {
        Action::Create => delete_peering(call, call.created_id(outputs)?).await,
        Action::Adopt => {
            let after = call.after(pick::peering_connection)?;
            let before_tags = call
                .before(pick::peering_connection)
                .map(|p| p.tags.clone())
                .ok();
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
                "peering connection {} was deleted and cannot be restored: request a new one \
                 with a new plan",
                call.existing_id()?
            ),
        )),
        Action::Update | Action::Replace => Err(call.unsupported("undo")),
    }
}

pub async fn find_connection(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let peering = call.after(pick::peering_connection)?;
    let found = find_tagged_peering(call, &peering.requester_vpc_id).await?;
    Ok(found.map(|p| id_output(&p.peering_id)))
}

async fn find_tagged_peering(
    call: &StepCall<'_>,
    requester_vpc_id: &str,
) -> Result<Option<PeeringState>, ProviderError> {
    let ec2 = call.ec2()?;
    let request = ec2
        .client
        .describe_vpc_peering_connections()
        .set_filters(Some(vec![
            filter("requester-vpc-info.vpc-id", [requester_vpc_id]),
            filter(&format!("tag:{TAG_STACK}"), [call.request.stack]),
            filter(
                &format!("tag:{TAG_ADDRESS}"),
                [call.step().address.as_str()],
            ),
        ]));
    let answer = send!(ec2.site, "DescribeVpcPeeringConnections", request)?;
    let found = answer
        .vpc_peering_connections()
        .iter()
        .map(peering_state)
        .find(|p| !p.is_dead() && is_tagged_for(&p.tags, call));
    Ok(found)
}

/// Requests the connection from the hub's region with `PeerRegion` (and `PeerOwnerId` across
/// accounts), or, in a repeated step, finds the one an earlier attempt requested. The call
/// takes no idempotency token, so after a timeout or a connection error the connection is
/// looked up by its tags before calling again.
async fn request_peering(
    call: &StepCall<'_>,
    peering: &PeeringConnection,
) -> Result<String, ProviderError> {
    if call.request.earlier_attempt
        && let Some(found) = find_tagged_peering(call, &peering.requester_vpc_id).await?
    {
        tracing::info!(peering = %found.peering_id, "peering from an earlier attempt found");
        return Ok(found.peering_id);
    }
    let ec2 = call.ec2()?;
    let mut calls = 0;
    loop {
        calls += 1;
        let request = ec2
            .client
            .create_vpc_peering_connection()
            .vpc_id(&peering.requester_vpc_id)
            .peer_vpc_id(&peering.accepter_vpc_id)
            .peer_region(&peering.accepter_region)
            .set_peer_owner_id(peering.accepter_owner_id.clone())
            .tag_specifications(tag_specification(
                ResourceType::VpcPeeringConnection,
                &peering.tags,
            ));
        let result = send_without_blind_retry!(
            ec2.site,
            "CreateVpcPeeringConnection",
            CreateVpcPeeringConnectionError,
            request
        );
        let error = match result {
            Ok(answer) => {
                let id = answer
                    .vpc_peering_connection()
                    .and_then(|p| p.vpc_peering_connection_id())
                    .unwrap_or_default()
                    .to_string();
                tracing::info!(peering = %id, "requested peering connection");
                return Ok(id);
            }
            Err(error) => error,
        };
        let unknown_outcome = matches!(error.kind, ErrorKind::Transient | ErrorKind::Timeout);
        if !unknown_outcome || calls >= CREATE_PEERING_CALLS {
            return Err(error);
        }
        tracing::warn!("CreateVpcPeeringConnection outcome unknown, re-reading: {error}");
        if let Some(found) = find_tagged_peering(call, &peering.requester_vpc_id).await? {
            return Ok(found.peering_id);
        }
    }
}

/// Fails with [`ErrorKind::Terminal`] when `peering` reads a state it cannot leave, with its
/// status message (overlapping CIDR blocks put a new connection in `failed`).
fn check_alive(ec2: &Ec2, operation: &str, peering: &PeeringState) -> Result<(), ProviderError> {
    if !peering.is_dead() {
        return Ok(());
    }
    let reason = peering
        .status_message
        .as_deref()
        .unwrap_or("no status message");
    Err(ec2.site.failure(
        ErrorKind::Terminal,
        operation,
        format!(
            "peering connection {} is {}: {reason}",
            peering.peering_id, peering.status
        ),
    ))
}

/// Waits until a requested connection reads `pending-acceptance` or `active`;
/// `initiating-request` and `provisioning` are in progress.
async fn wait_requested(call: &StepCall<'_>, id: &str) -> Result<(), ProviderError> {
    let ec2 = call.ec2()?;
    let outcome = poll(call.request.wait_timeout, call.request.progress, || async {
        let Some(peering) = describe_peering(ec2, id).await? else {
            return Ok(Probe::Pending(format!("peering {id} not listed yet")));
        };
        check_alive(ec2, "CreateVpcPeeringConnection", &peering)?;
        match peering.status.as_str() {
            "pending-acceptance" | "active" => Ok(Probe::Ready(())),
            status => Ok(Probe::Pending(format!("peering {id} {status}"))),
        }
    })
    .await;
    timed_out_as_error(ec2, "CreateVpcPeeringConnection", outcome)
}

fn timed_out_as_error(
    ec2: &Ec2,
    operation: &str,
    outcome: Result<(), WaitError>,
) -> Result<(), ProviderError> {
    match outcome {
        Ok(()) => Ok(()),
        Err(WaitError::Failed(error)) => Err(error),
        Err(WaitError::TimedOut { status, waited }) => Err(ec2.site.failure(
            ErrorKind::Timeout,
            operation,
            format!("still {status} after {}", seconds(waited)),
        )),
    }
}

/// Deletes connection `id` and waits until it no longer reads `deleting`.
async fn delete_peering(call: &StepCall<'_>, id: &str) -> Result<(), ProviderError> {
    let ec2 = call.ec2()?;
    let request = ec2
        .client
        .delete_vpc_peering_connection()
        .vpc_peering_connection_id(id);
    match send!(ec2.site, "DeleteVpcPeeringConnection", request) {
        Ok(_) => tracing::info!(peering = id, "deleting peering connection"),
        Err(error) if is_not_found(&error) => {
            tracing::info!(peering = id, "peering connection already deleted");
            return Ok(());
        }
        Err(error) => {
            // A connection that is already dead cannot be deleted, and need not be.
            match describe_peering(ec2, id).await? {
                Some(peering) if peering.is_dead() && peering.status != "deleting" => return Ok(()),
                None => return Ok(()),
                Some(_) => return Err(error),
            }
        }
    }
    let outcome = poll(call.request.wait_timeout, call.request.progress, || async {
        match describe_peering(ec2, id).await? {
            Some(peering) if peering.status == "deleting" => {
                Ok(Probe::Pending(format!("peering {id} deleting")))
            }
            _ => Ok(Probe::Ready(())),
        }
    })
    .await;
    timed_out_as_error(ec2, "DeleteVpcPeeringConnection", outcome)
}

// ---- Acceptance -----------------------------------------------------------------------------

/// Accepts the connection with the accepter's client and waits until it reads `active` in the
/// accepter's region and in the requester's. AcceptVpcPeeringConnection must come from the
/// accepter's region: AWS and moto reject it from the requester's.
pub async fn apply_acceptance(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    if call.action() != Action::Create {
        return Err(call.unsupported("apply"));
    }
    let acceptance = call.after(pick::peering_acceptance)?;
    let id = call.known(&acceptance.peering_id)?;
    let accepter = call.ec2()?;
    let requester = call
        .clients
        .ec2_in_region(&acceptance.requester_region, &call.step().context)?;
    let accepted = Mutex::new(false);

    let outcome = poll(call.request.wait_timeout, call.request.progress, || async {
        let Some(peering) = describe_peering(accepter, id).await? else {
            return Ok(Probe::Pending(format!(
                "peering {id} not listed in the accepter region yet"
            )));
        };
        check_alive(accepter, "AcceptVpcPeeringConnection", &peering)?;
        match peering.status.as_str() {
            "pending-acceptance" => {
                let sent = *accepted.lock().expect("no panic while held");
                if !sent && accept(accepter, id).await? {
                    *accepted.lock().expect("no panic while held") = true;
                }
                Ok(Probe::Pending(format!("peering {id} pending-acceptance")))
            }
            "active" => {
                let Some(seen) = describe_peering(requester, id).await? else {
                    return Ok(Probe::Pending(format!(
                        "peering {id} active, not listed in the requester region yet"
                    )));
                };
                check_alive(requester, "AcceptVpcPeeringConnection", &seen)?;
                if seen.status == "active" {
                    Ok(Probe::Ready(()))
                } else {
                    Ok(Probe::Pending(format!(
                        "peering {id} active, {} in the requester region",
                        seen.status
                    )))
                }
            }
            status => Ok(Probe::Pending(format!("peering {id} {status}"))),
        }
    })
    .await;
    timed_out_as_error(accepter, "AcceptVpcPeeringConnection", outcome)?;
    tracing::info!(peering = id, "peering connection active in both regions");
    Ok(id_output(id))
}

/// Sends AcceptVpcPeeringConnection and reports whether it was accepted. An error saying the
/// connection is not (yet) in a state to be accepted is left to the next probe, which reads
/// the state again and may accept again.
async fn accept(ec2: &Ec2, id: &str) -> Result<bool, ProviderError> {
    let request = ec2
        .client
        .accept_vpc_peering_connection()
        .vpc_peering_connection_id(id);
    match send!(ec2.site, "AcceptVpcPeeringConnection", request) {
        Ok(_) => {
            tracing::info!(peering = id, "accepted peering connection");
            Ok(true)
        }
        Err(error) if matches!(error.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {
            tracing::info!(
                peering = id,
                "accept not possible yet, reading the state again: {error}"
            );
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

pub async fn undo_acceptance(call: &StepCall<'_>) -> Result<(), ProviderError> {
    // Deleting the connection, which the peering step's undo does, also ends the acceptance.
    match call.action() {
        Action::Create | Action::Delete => Ok(()),
        _ => Err(call.unsupported("undo")),
    }
}

pub async fn find_acceptance(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let acceptance = call.after(pick::peering_acceptance)?;
    let id = call.known(&acceptance.peering_id)?;
    let peering = describe_peering(call.ec2()?, id).await?;
    Ok(peering
        .filter(|p| p.status == "active")
        .map(|_| id_output(id)))
}

// ---- Routes ---------------------------------------------------------------------------------

pub async fn apply_route(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    match call.action() {
        Action::Create => create_route(call, call.after(pick::route)?).await?,
        Action::Delete => delete_route(call, call.before(pick::route)?, true).await?,
        _ => return Err(call.unsupported("apply")),
    }
    Ok(Outputs::new())
}

pub async fn undo_route(call: &StepCall<'_>) -> Result<(), ProviderError> {
    match call.action() {
        Action::Create => delete_route(call, call.after(pick::route)?, false).await,
        Action::Delete => create_route(call, call.before(pick::route)?).await,
        _ => Err(call.unsupported("undo")),
    }
}

pub async fn find_route(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let route = call.after(pick::route)?;
    let peering_id = call.known(&route.peering_id)?;
    let target = route_target(call.ec2()?, route).await?;
    Ok((target.as_deref() == Some(peering_id)).then(Outputs::new))
}

/// Returns the target of the table's route to the route's destination; `None` when the table
/// has no such route or does not exist.
async fn route_target(ec2: &Ec2, route: &Route) -> Result<Option<String>, ProviderError> {
    let request = ec2
        .client
        .describe_route_tables()
        .route_table_ids(&route.route_table_id);
    let answer = match send!(ec2.site, "DescribeRouteTables", request) {
        Ok(answer) => answer,
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let target = answer
        .route_tables()
        .iter()
        .map(route_table_state)
        .flat_map(|table| table.routes)
        .find(|r| r.destination_cidr == route.destination_cidr)
        .map(|r| r.target);
    Ok(target)
}

async fn create_route(call: &StepCall<'_>, route: &Route) -> Result<(), ProviderError> {
    let ec2 = call.ec2()?;
    let peering_id = call.known(&route.peering_id)?;
    let request = ec2
        .client
        .create_route()
        .route_table_id(&route.route_table_id)
        .destination_cidr_block(&route.destination_cidr)
        .vpc_peering_connection_id(peering_id);
    let error = match send!(ec2.site, "CreateRoute", request) {
        Ok(_) => {
            tracing::info!(
                table = %route.route_table_id,
                cidr = %route.destination_cidr,
                "created route"
            );
            return Ok(());
        }
        Err(error) if has_code(&error, "RouteAlreadyExists") => error,
        Err(error) => return Err(error),
    };

    // A route to the same destination exists: done when it goes over this connection.
    match route_target(ec2, route).await? {
        Some(target) if target == peering_id => {
            tracing::info!(
                table = %route.route_table_id,
                cidr = %route.destination_cidr,
                "route already present"
            );
            Ok(())
        }
        target => Err(ProviderError {
            message: format!(
                "route table {} already routes {} to {}, not to {peering_id}: remove that route \
                 or leave this table out of the config",
                route.route_table_id,
                route.destination_cidr,
                target.as_deref().unwrap_or("another target")
            ),
            ..error
        }),
    }
}

/// Deletes the route when it still goes over the step's connection. A route the table no
/// longer has counts as deleted. A route that now has another target is someone else's: a
/// delete step fails on it (`strict`), an undo leaves it in place.
async fn delete_route(
    call: &StepCall<'_>,
    route: &Route,
    strict: bool,
) -> Result<(), ProviderError> {
    let ec2 = call.ec2()?;
    let peering_id = call.known(&route.peering_id)?;
    match route_target(ec2, route).await? {
        None => {
            tracing::info!(
                table = %route.route_table_id,
                cidr = %route.destination_cidr,
                "route already absent"
            );
            return Ok(());
        }
        Some(target) if target != peering_id => {
            let message = format!(
                "route table {} routes {} to {target} now, not to {peering_id}, so the route was \
                 left in place",
                route.route_table_id, route.destination_cidr
            );
            if strict {
                return Err(ec2
                    .site
                    .failure(ErrorKind::Conflict, "DeleteRoute", message));
            }
            tracing::warn!("{message}");
            return Ok(());
        }
        Some(_) => {}
    }
    let request = ec2
        .client
        .delete_route()
        .route_table_id(&route.route_table_id)
        .destination_cidr_block(&route.destination_cidr);
    match send!(ec2.site, "DeleteRoute", request) {
        Ok(_) => {
            tracing::info!(
                table = %route.route_table_id,
                cidr = %route.destination_cidr,
                "deleted route"
            );
            Ok(())
        }
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(error),
    }
}
