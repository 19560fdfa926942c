//! Steps on Route 53: the private hosted zone, its alias records, its association with more
//! VPCs, and the authorizations that let VPCs of other accounts associate.

use std::collections::BTreeSet;

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeInfo, HostedZoneConfig,
    ResourceRecordSet, RrType, Tag, TagResourceType, Vpc, VpcRegion,
};
use linkplan_engine::observed::RecordState;
use linkplan_engine::provider::{ErrorKind, Outputs, ProviderError};
use linkplan_engine::resource::{AliasRecord, AliasRecords, HostedZone, Tags};
use linkplan_engine::step::Action;

use crate::errors::{has_code, is_not_found, send};
use crate::normalize::{change_id, dns_name, zone_id};
use crate::read_route53::list_records;
use crate::sdk_config::Route53;
use crate::steps::{StepCall, id_output, pick};
use crate::wait::{Probe, WaitError, poll, seconds};

/// ChangeTagsForResource takes at most this many tags to add per call.
const TAG_CHANGE_BATCH: usize = 10;

/// The maximum length of a hosted zone id. An alias target zone id that is longer, or has a
/// dot, is a DNS name put where the zone id belongs, and Route 53 reports that only as a
/// cryptic length error.
const MAX_ZONE_ID_LENGTH: usize = 32;

// ---- Hosted zone ----------------------------------------------------------------------------

pub async fn apply_zone(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    match call.action() {
        Action::Create => {
            let zone = call.after(pick::hosted_zone)?;
            let id = create_zone(call, zone).await?;
            Ok(id_output(&id))
        }
        Action::Adopt => {
            let id = call.existing_id()?;
            let zone = call.after(pick::hosted_zone)?;
            add_zone_tags(call.route53()?, id, &zone.tags).await?;
            Ok(id_output(id))
        }
        Action::Delete => {
            delete_zone(call, call.existing_id()?).await?;
            Ok(Outputs::new())
        }
        Action::Update | Action::Replace => Err(call.unsupported("apply")),
    }
}

pub async fn undo_zone(call: &StepCall<'_>, outputs: &Outputs) -> Result<(), ProviderError> {
    match call.action() {
        Action::Create => delete_zone(call, call.created_id(outputs)?).await,
        Action::Adopt => {
            let id = call.existing_id()?;
            let added = &call.after(pick::hosted_zone)?.tags;
            let before = call
                .before(pick::hosted_zone)
                .map(|z| z.tags.clone())
                .unwrap_or_default();
            restore_zone_tags(call.route53()?, id, added, &before).await
        }
        Action::Delete => Err(call.error(
            ErrorKind::Other,
            format!(
                "hosted zone {} was deleted and cannot be restored: create it again with a new \
                 plan",
                call.existing_id()?
            ),
        )),
        Action::Update | Action::Replace => Err(call.unsupported("undo")),
    }
}

pub async fn find_zone(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let zone = call.after(pick::hosted_zone)?;
    let found = find_zone_by_reference(call.route53()?, &zone.name, call.request.token).await?;
    Ok(found.map(|id| id_output(&id)))
}

/// Creates the private zone with `CallerReference` = the step's token, tags it and waits for
/// the change. A zone with that caller reference (from an earlier attempt) is used instead:
/// AWS rejects a repeated reference with `HostedZoneAlreadyExists`, while moto 5.2.5 creates a
/// second zone, so a repeated step looks for the zone before the call too.
async fn create_zone(call: &StepCall<'_>, zone: &HostedZone) -> Result<String, ProviderError> {
    let route53 = call.route53()?;
    let token = call.request.token;
    let earlier = if call.request.earlier_attempt {
        find_zone_by_reference(route53, &zone.name, token).await?
    } else {
        None
    };
    let (id, change) = match earlier {
        Some(id) => {
            tracing::info!(zone = %id, "hosted zone from an earlier attempt found");
            (id, None)
        }
        None => {
            let config = HostedZoneConfig::builder()
                .comment(&zone.comment)
                .private_zone(true)
                .build();
            let request = route53
                .client
                .create_hosted_zone()
                .name(&zone.name)
                .caller_reference(token)
                .hosted_zone_config(config)
                .vpc(vpc(&zone.vpc_id, &zone.vpc_region));
            match send!(route53.site, "CreateHostedZone", request) {
                Ok(answer) => {
                    let id = answer
                        .hosted_zone()
                        .map(|z| zone_id(z.id()))
                        .unwrap_or_default();
                    let change = answer.change_info().cloned();
                    tracing::info!(zone = %id, name = %zone.name, "created hosted zone");
                    (id, change)
                }
                Err(error) if has_code(&error, "HostedZoneAlreadyExists") => {
                    match find_zone_by_reference(route53, &zone.name, token).await? {
                        Some(id) => (id, None),
                        None => return Err(error),
                    }
                }
                Err(error) => return Err(error),
            }
        }
    };

    // Tagging needs only the zone id, so it runs while the creation propagates.
    let insync = settle(call, route53, change.as_ref(), "CreateHostedZone");
    tokio::try_join!(add_zone_tags(route53, &id, &zone.tags), insync)?;
    Ok(id)
}

/// Returns the zone named `name` whose caller reference is `reference`.
async fn find_zone_by_reference(
    route53: &Route53,
    name: &str,
    reference: &str,
) -> Result<Option<String>, ProviderError> {
    let mut start_name = Some(name.to_string());
    let mut start_id: Option<String> = None;
    loop {
        let request = route53
            .client
            .list_hosted_zones_by_name()
            .set_dns_name(start_name.take())
            .set_hosted_zone_id(start_id.take());
        let page = send!(route53.site, "ListHostedZonesByName", request)?;
        let mut past_name = false;
        for zone in page.hosted_zones() {
            if dns_name(zone.name()) != name {
                past_name = true;
            } else if zone.caller_reference() == reference {
                return Ok(Some(zone_id(zone.id())));
            }
        }
        if past_name || !page.is_truncated() {
            return Ok(None);
        }
        start_name = page.next_dns_name().map(str::to_string);
        start_id = page.next_hosted_zone_id().map(str::to_string);
        if start_name.is_none() {
            return Ok(None);
        }
    }
}

async fn add_zone_tags(route53: &Route53, id: &str, tags: &Tags) -> Result<(), ProviderError> {
    let all: Vec<Tag> = tags
        .iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect();
    for batch in all.chunks(TAG_CHANGE_BATCH) {
        let request = route53
            .client
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(id)
            .set_add_tags(Some(batch.to_vec()));
        send!(route53.site, "ChangeTagsForResource", request)?;
    }
    Ok(())
}

/// Reverses [`add_zone_tags`]: removes the keys of `added` that `before` did not have, and puts
/// back the old value of those it had.
async fn restore_zone_tags(
    route53: &Route53,
    id: &str,
    added: &Tags,
    before: &Tags,
) -> Result<(), ProviderError> {
    let remove: Vec<String> = added
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    if !remove.is_empty() {
        let request = route53
            .client
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(id)
            .set_remove_tag_keys(Some(remove));
        match send!(route53.site, "ChangeTagsForResource", request) {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    let old: Tags = added
        .keys()
        .filter_map(|k| before.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    add_zone_tags(route53, id, &old).await
}

/// Deletes zone `id`; an absent zone counts as deleted. Route 53 refuses a zone that still has
/// records other than SOA and NS (`HostedZoneNotEmpty`), so the records step goes first.
async fn delete_zone(call: &StepCall<'_>, id: &str) -> Result<(), ProviderError> {
    let route53 = call.route53()?;
    let request = route53.client.delete_hosted_zone().id(id);
    match send!(route53.site, "DeleteHostedZone", request) {
        Ok(answer) => {
            tracing::info!(zone = id, "deleted hosted zone");
            settle(call, route53, answer.change_info(), "DeleteHostedZone").await
        }
        Err(error) if is_not_found(&error) => {
            tracing::info!(zone = id, "hosted zone already deleted");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Waits until `change`, as returned by a change call, is `INSYNC`. A change that is already
/// `INSYNC` (moto's always is), or no change at all, needs no poll.
async fn settle(
    call: &StepCall<'_>,
    route53: &Route53,
    change: Option<&ChangeInfo>,
    operation: &str,
) -> Result<(), ProviderError> {
    match change {
        Some(change) if !is_insync(change.status().as_str()) => {
            wait_insync(call, route53, &change_id(change.id()), operation).await
        }
        _ => Ok(()),
    }
}

fn is_insync(status: &str) -> bool {
    status.eq_ignore_ascii_case("INSYNC")
}

/// Polls change `change` until it reads `INSYNC`.
async fn wait_insync(
    call: &StepCall<'_>,
    route53: &Route53,
    change: &str,
    operation: &str,
) -> Result<(), ProviderError> {
    let outcome = poll(call.request.wait_timeout, call.request.progress, || async {
        let request = route53.client.get_change().id(change);
        let answer = send!(route53.site, "GetChange", request)?;
        let status = answer
            .change_info()
            .map(|c| c.status().as_str().to_string())
            .unwrap_or_default();
        if is_insync(&status) {
            Ok(Probe::Ready(()))
        } else {
            Ok(Probe::Pending(format!("Route 53 change {change} {status}")))
        }
    })
    .await;
    match outcome {
        Ok(()) => Ok(()),
        Err(WaitError::Failed(error)) => Err(error),
        Err(WaitError::TimedOut { status, waited }) => Err(route53.site.failure(
            ErrorKind::Timeout,
            operation,
            format!("{status} after {}, not yet INSYNC", seconds(waited)),
        )),
    }
}

fn vpc(vpc_id: &str, region: &str) -> Vpc {
    Vpc::builder()
        .vpc_id(vpc_id)
        .vpc_region(VpcRegion::from(region))
        .build()
}

// ---- Alias records --------------------------------------------------------------------------

/// A record of a change batch with every value known.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KnownRecord {
    name: String,
    record_type: String,
    target_dns_name: String,
    target_zone_id: String,
    evaluate_target_health: bool,
}

impl KnownRecord {
    fn key(&self) -> (&str, &str) {
        (&self.name, &self.record_type)
    }

    /// Reports whether `existing` is this record exactly, as a DELETE must repeat it.
    fn matches(&self, existing: &RecordState) -> bool {
        let Some(alias) = &existing.alias else {
            return false;
        };
        existing.name == dns_name(&self.name)
            && existing.record_type == self.record_type
            && existing.set_identifier.is_none()
            && alias.dns_name == dns_name(&self.target_dns_name)
            && alias.hosted_zone_id == self.target_zone_id
            && alias.evaluate_target_health == self.evaluate_target_health
    }

    fn record_set(&self) -> ResourceRecordSet {
        let alias = AliasTarget::builder()
            .hosted_zone_id(&self.target_zone_id)
            .dns_name(&self.target_dns_name)
            .evaluate_target_health(self.evaluate_target_health)
            .build()
            .expect("zone id, DNS name and target health are all set");
        ResourceRecordSet::builder()
            .name(&self.name)
            .r#type(RrType::from(self.record_type.as_str()))
            .alias_target(alias)
            .build()
            .expect("name and type are set")
    }
}

/// Resolves the records of `records` to known values and checks every alias zone id.
fn known_records(
    call: &StepCall<'_>,
    records: &AliasRecords,
) -> Result<Vec<KnownRecord>, ProviderError> {
    records
        .records
        .iter()
        .map(|record| known_record(call, record))
        .collect()
}

fn known_record(call: &StepCall<'_>, record: &AliasRecord) -> Result<KnownRecord, ProviderError> {
    let target_zone_id = call.known(&record.target_zone_id)?.to_string();
    if !is_zone_id(&target_zone_id) {
        return Err(call.error(
            ErrorKind::InvalidRequest,
            format!(
                "alias record {} has target zone id `{target_zone_id}`, which is not a hosted \
                 zone id (at most {MAX_ZONE_ID_LENGTH} characters, no dots): it must be the \
                 HostedZoneId of the endpoint's DNS entry",
                record.name
            ),
        ));
    }
    Ok(KnownRecord {
        name: record.name.clone(),
        record_type: record.record_type.clone(),
        target_dns_name: call.known(&record.target_dns_name)?.to_string(),
        target_zone_id,
        evaluate_target_health: record.evaluate_target_health,
    })
}

/// Reports whether `value` can be a hosted zone id.
fn is_zone_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_ZONE_ID_LENGTH && !value.contains('.')
}

/// Returns the records of `from` whose name and type `to` does not have.
fn missing_from(from: &[KnownRecord], to: &[KnownRecord]) -> Vec<KnownRecord> {
    let kept: BTreeSet<(&str, &str)> = to.iter().map(KnownRecord::key).collect();
    from.iter()
        .filter(|r| !kept.contains(&r.key()))
        .cloned()
        .collect()
}

pub async fn apply_records(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    match call.action() {
        Action::Create => {
            let after = call.after(pick::alias_records)?;
            let upserts = known_records(call, after)?;
            change_records(call, call.known(&after.zone_id)?, &upserts, &[]).await?;
        }
        Action::Update => {
            let after = call.after(pick::alias_records)?;
            let before = call.before(pick::alias_records)?;
            let upserts = known_records(call, after)?;
            let deletes = missing_from(&known_records(call, before)?, &upserts);
            change_records(call, call.known(&after.zone_id)?, &upserts, &deletes).await?;
        }
        Action::Delete => {
            let before = call.before(pick::alias_records)?;
            let deletes = known_records(call, before)?;
            change_records(call, call.known(&before.zone_id)?, &[], &deletes).await?;
        }
        Action::Replace | Action::Adopt => return Err(call.unsupported("apply")),
    }
    Ok(Outputs::new())
}

pub async fn undo_records(call: &StepCall<'_>) -> Result<(), ProviderError> {
    match call.action() {
        Action::Create => {
            let after = call.after(pick::alias_records)?;
            let deletes = known_records(call, after)?;
            change_records(call, call.known(&after.zone_id)?, &[], &deletes).await
        }
        Action::Update => {
            let after = call.after(pick::alias_records)?;
            let before = call.before(pick::alias_records)?;
            let upserts = known_records(call, before)?;
            let deletes = missing_from(&known_records(call, after)?, &upserts);
            change_records(call, call.known(&before.zone_id)?, &upserts, &deletes).await
        }
        Action::Delete => {
            let before = call.before(pick::alias_records)?;
            let upserts = known_records(call, before)?;
            change_records(call, call.known(&before.zone_id)?, &upserts, &[]).await
        }
        Action::Replace | Action::Adopt => Err(call.unsupported("undo")),
    }
}

pub async fn find_records(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let after = call.after(pick::alias_records)?;
    let wanted = known_records(call, after)?;
    let existing = match list_records(call.route53()?, call.known(&after.zone_id)?).await {
        Ok(existing) => existing,
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let all_present = wanted.iter().all(|w| existing.iter().any(|e| w.matches(e)));
    Ok(all_present.then(Outputs::new))
}

/// Sends one all-or-nothing change batch: `UPSERT` of `upserts` and `DELETE` of `deletes`, then
/// waits for `INSYNC`. `CREATE` is never sent, because it fails on a record that exists.
///
/// A DELETE must repeat the record exactly and fails the whole batch (`InvalidChangeBatch`)
/// when the record is gone. Then the zone is read, the DELETEs of records that are no longer
/// there as given are dropped (they count as done), and the rest is sent once more.
async fn change_records(
    call: &StepCall<'_>,
    zone: &str,
    upserts: &[KnownRecord],
    deletes: &[KnownRecord],
) -> Result<(), ProviderError> {
    let route53 = call.route53()?;
    let error = match send_change_batch(call, route53, zone, upserts, deletes).await {
        Ok(()) => return Ok(()),
        Err(error) if has_code(&error, "InvalidChangeBatch") && !deletes.is_empty() => error,
        Err(error) => return Err(error),
    };

    let existing = match list_records(route53, zone).await {
        Ok(existing) => existing,
        Err(read_error) if is_not_found(&read_error) && upserts.is_empty() => {
            tracing::info!(zone, "hosted zone is gone, so its records are too");
            return Ok(());
        }
        Err(read_error) => return Err(read_error),
    };
    let still_present: Vec<KnownRecord> = deletes
        .iter()
        .filter(|d| existing.iter().any(|e| d.matches(e)))
        .cloned()
        .collect();
    if still_present.len() == deletes.len() {
        return Err(error);
    }
    for gone in deletes.iter().filter(|d| !still_present.contains(d)) {
        tracing::info!(zone, record = %gone.name, "record already absent or changed, not deleted");
    }
    if upserts.is_empty() && still_present.is_empty() {
        return Ok(());
    }
    send_change_batch(call, route53, zone, upserts, &still_present).await
}

async fn send_change_batch(
    call: &StepCall<'_>,
    route53: &Route53,
    zone: &str,
    upserts: &[KnownRecord],
    deletes: &[KnownRecord],
) -> Result<(), ProviderError> {
    let mut changes = Vec::new();
    for (action, record) in deletes
        .iter()
        .map(|r| (ChangeAction::Delete, r))
        .chain(upserts.iter().map(|r| (ChangeAction::Upsert, r)))
    {
        let change = Change::builder()
            .action(action)
            .resource_record_set(record.record_set())
            .build()
            .expect("action and record set are set");
        changes.push(change);
    }
    if changes.is_empty() {
        return Ok(());
    }
    let batch = ChangeBatch::builder()
        .comment(format!("linkplan {}", call.step().address))
        .set_changes(Some(changes))
        .build()
        .expect("changes are set");
    let request = route53
        .client
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch);
    let answer = send!(route53.site, "ChangeResourceRecordSets", request)?;
    tracing::info!(
        zone,
        upserts = upserts.len(),
        deletes = deletes.len(),
        "changed records"
    );
    settle(
        call,
        route53,
        answer.change_info(),
        "ChangeResourceRecordSets",
    )
    .await
}

// ---- Zone associations and authorizations ---------------------------------------------------

pub async fn apply_association(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    match call.action() {
        Action::Create => {
            let association = call.after(pick::zone_association)?;
            let zone = call.known(&association.zone_id)?;
            associate(call, zone, &association.vpc_id, &association.vpc_region).await?;
        }
        Action::Delete => {
            let association = call.before(pick::zone_association)?;
            let zone = call.known(&association.zone_id)?;
            disassociate(call, zone, &association.vpc_id, &association.vpc_region).await?;
        }
        _ => return Err(call.unsupported("apply")),
    }
    Ok(Outputs::new())
}

pub async fn undo_association(call: &StepCall<'_>) -> Result<(), ProviderError> {
    match call.action() {
        Action::Create => {
            let association = call.after(pick::zone_association)?;
            let zone = call.known(&association.zone_id)?;
            disassociate(call, zone, &association.vpc_id, &association.vpc_region).await
        }
        Action::Delete => {
            let association = call.before(pick::zone_association)?;
            let zone = call.known(&association.zone_id)?;
            associate(call, zone, &association.vpc_id, &association.vpc_region).await
        }
        _ => Err(call.unsupported("undo")),
    }
}

pub async fn find_association(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let association = call.after(pick::zone_association)?;
    let zone = call.known(&association.zone_id)?;
    let associated = is_associated(
        call.route53()?,
        zone,
        &association.vpc_id,
        &association.vpc_region,
    )
    .await?;
    Ok(associated.then(Outputs::new))
}

/// Associates the VPC, in its own region, with the zone, with the VPC account's client, and
/// waits for the change. An association that already exists counts as done.
async fn associate(
    call: &StepCall<'_>,
    zone: &str,
    vpc_id: &str,
    region: &str,
) -> Result<(), ProviderError> {
    let route53 = call.route53()?;
    let request = route53
        .client
        .associate_vpc_with_hosted_zone()
        .hosted_zone_id(zone)
        .vpc(vpc(vpc_id, region));
    match send!(route53.site, "AssociateVPCWithHostedZone", request) {
        Ok(answer) => {
            tracing::info!(
                zone,
                vpc = vpc_id,
                region,
                "associated VPC with hosted zone"
            );
            settle(
                call,
                route53,
                answer.change_info(),
                "AssociateVPCWithHostedZone",
            )
            .await
        }
        Err(error) if error.kind == ErrorKind::Conflict => {
            if is_associated(route53, zone, vpc_id, region).await? {
                tracing::info!(
                    zone,
                    vpc = vpc_id,
                    "VPC already associated with hosted zone"
                );
                Ok(())
            } else {
                Err(error)
            }
        }
        Err(error) => Err(error),
    }
}

/// Reports whether the VPC is associated with the zone, by ListHostedZonesByVPC. The VPC's
/// account may make that call even when another account owns the zone.
async fn is_associated(
    route53: &Route53,
    zone: &str,
    vpc_id: &str,
    region: &str,
) -> Result<bool, ProviderError> {
    let mut token: Option<String> = None;
    loop {
        let request = route53
            .client
            .list_hosted_zones_by_vpc()
            .vpc_id(vpc_id)
            .vpc_region(VpcRegion::from(region))
            .set_next_token(token.take());
        let page = send!(route53.site, "ListHostedZonesByVPC", request)?;
        if page
            .hosted_zone_summaries()
            .iter()
            .any(|s| zone_id(s.hosted_zone_id()) == zone)
        {
            return Ok(true);
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(false),
        }
    }
}

async fn disassociate(
    call: &StepCall<'_>,
    zone: &str,
    vpc_id: &str,
    region: &str,
) -> Result<(), ProviderError> {
    let route53 = call.route53()?;
    let request = route53
        .client
        .disassociate_vpc_from_hosted_zone()
        .hosted_zone_id(zone)
        .vpc(vpc(vpc_id, region));
    match send!(route53.site, "DisassociateVPCFromHostedZone", request) {
        Ok(answer) => {
            tracing::info!(
                zone,
                vpc = vpc_id,
                region,
                "disassociated VPC from hosted zone"
            );
            settle(
                call,
                route53,
                answer.change_info(),
                "DisassociateVPCFromHostedZone",
            )
            .await
        }
        Err(error) if is_not_found(&error) => {
            tracing::info!(
                zone,
                vpc = vpc_id,
                "VPC already disassociated from hosted zone"
            );
            Ok(())
        }
        // moto 5.2.5 checks for the last association before checking that this VPC is
        // associated at all, so a repeated disassociation can get LastVPCAssociation.
        Err(error) if has_code(&error, "LastVPCAssociation") => {
            if is_associated(route53, zone, vpc_id, region).await? {
                return Err(error);
            }
            tracing::info!(
                zone,
                vpc = vpc_id,
                "VPC already disassociated from hosted zone"
            );
            Ok(())
        }
        Err(error) => Err(error),
    }
}

pub async fn apply_authorization(call: &StepCall<'_>) -> Result<Outputs, ProviderError> {
    match call.action() {
        Action::Create => {
            let authorization = call.after(pick::association_authorization)?;
            let zone = call.known(&authorization.zone_id)?;
            authorize(call, zone, &authorization.vpc_id, &authorization.vpc_region).await?;
        }
        Action::Delete => {
            let authorization = call.before(pick::association_authorization)?;
            let zone = call.known(&authorization.zone_id)?;
            deauthorize(call, zone, &authorization.vpc_id, &authorization.vpc_region).await?;
        }
        _ => return Err(call.unsupported("apply")),
    }
    Ok(Outputs::new())
}

pub async fn undo_authorization(call: &StepCall<'_>) -> Result<(), ProviderError> {
    match call.action() {
        Action::Create => {
            let authorization = call.after(pick::association_authorization)?;
            let zone = call.known(&authorization.zone_id)?;
            deauthorize(call, zone, &authorization.vpc_id, &authorization.vpc_region).await
        }
        Action::Delete => {
            let authorization = call.before(pick::association_authorization)?;
            let zone = call.known(&authorization.zone_id)?;
            authorize(call, zone, &authorization.vpc_id, &authorization.vpc_region).await
        }
        _ => Err(call.unsupported("undo")),
    }
}

pub async fn find_authorization(call: &StepCall<'_>) -> Result<Option<Outputs>, ProviderError> {
    let authorization = call.after(pick::association_authorization)?;
    let zone = call.known(&authorization.zone_id)?;
    let route53 = call.route53()?;
    let mut token: Option<String> = None;
    loop {
        let request = route53
            .client
            .list_vpc_association_authorizations()
            .hosted_zone_id(zone)
            .set_next_token(token.take());
        let page = match send!(route53.site, "ListVPCAssociationAuthorizations", request) {
            Ok(page) => page,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error),
        };
        let found = page.vpcs().iter().any(|v| {
            v.vpc_id() == Some(authorization.vpc_id.as_str())
                && v.vpc_region().map(|r| r.as_str()) == Some(authorization.vpc_region.as_str())
        });
        if found {
            return Ok(Some(Outputs::new()));
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(None),
        }
    }
}

/// Lets the VPC (of another account) associate with the zone. Authorizing twice is harmless.
async fn authorize(
    call: &StepCall<'_>,
    zone: &str,
    vpc_id: &str,
    region: &str,
) -> Result<(), ProviderError> {
    let route53 = call.route53()?;
    let request = route53
        .client
        .create_vpc_association_authorization()
        .hosted_zone_id(zone)
        .vpc(vpc(vpc_id, region));
    send!(route53.site, "CreateVPCAssociationAuthorization", request)?;
    tracing::info!(zone, vpc = vpc_id, region, "authorized VPC association");
    Ok(())
}

async fn deauthorize(
    call: &StepCall<'_>,
    zone: &str,
    vpc_id: &str,
    region: &str,
) -> Result<(), ProviderError> {
    let route53 = call.route53()?;
    let request = route53
        .client
        .delete_vpc_association_authorization()
        .hosted_zone_id(zone)
        .vpc(vpc(vpc_id, region));
    match send!(route53.site, "DeleteVPCAssociationAuthorization", request) {
        Ok(_) => {
            tracing::info!(
                zone,
                vpc = vpc_id,
                region,
                "deleted VPC association authorization"
            );
            Ok(())
        }
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use linkplan_engine::observed::AliasTargetState;

    use super::*;

    fn record(name: &str, target: &str) -> KnownRecord {
        KnownRecord {
            name: name.to_string(),
            record_type: "A".to_string(),
            target_dns_name: target.to_string(),
            target_zone_id: "Z7HUB22UULQXV".to_string(),
            evaluate_target_health: false,
        }
    }

    #[test]
    fn zone_id_check_rejects_dns_names() {
        assert!(is_zone_id("Z7HUB22UULQXV"));
        assert!(is_zone_id("E0D12F90F7269"));
        assert!(!is_zone_id(
            "vpce-0abc-1x2y.vpce-svc-0ecb.us-east-1.vpce.amazonaws.com"
        ));
        assert!(!is_zone_id("Z123456789012345678901234567890123"));
        assert!(!is_zone_id(""));
    }

    #[test]
    fn missing_from_compares_name_and_type() {
        let before = vec![record("a.example", "x"), record("b.example", "y")];
        let after = vec![record("a.example", "z")];
        let missing = missing_from(&before, &after);
        assert_eq!(missing, vec![record("b.example", "y")]);
    }

    #[test]
    fn record_matches_only_exact_alias() {
        let wanted = record(
            "app.deepsecurity.trendmicro.com",
            "vpce-1-abc.vpce.amazonaws.com",
        );
        let mut existing = RecordState {
            name: "app.deepsecurity.trendmicro.com".to_string(),
            record_type: "A".to_string(),
            alias: Some(AliasTargetState {
                dns_name: "vpce-1-abc.vpce.amazonaws.com".to_string(),
                hosted_zone_id: "Z7HUB22UULQXV".to_string(),
                evaluate_target_health: false,
            }),
            values: Vec::new(),
            ttl: None,
            set_identifier: None,
        };
        assert!(wanted.matches(&existing));
        existing.alias.as_mut().unwrap().evaluate_target_health = true;
        assert!(!wanted.matches(&existing));
    }
}
