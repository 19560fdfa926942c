//! The AWS provider of linkplan: the engine's [`Provider`] trait over aws-sdk-ec2,
//! aws-sdk-route53 and aws-sdk-sts.
//!
//! # How the provider is built
//! 1. [`AwsProvider::new`] loads one shared SDK config per set of credentials (the standard
//!    chain, a named profile, or a role assumed on top of either), with the timeouts of
//!    [`Timeouts`] and standard retries with exponential backoff (`sdk_config.rs`).
//! 2. It builds one EC2 and one STS client per context (region and credentials) and one
//!    Route 53 client per set of credentials, signed for us-east-1 whatever the hub's region.
//! 3. It resolves each service's endpoint the way the SDK does, rejects an override that
//!    reaches only some services, and keeps the result for [`Provider::endpoint_url`].
//!
//! # How a stack is read
//! 1. STS `GetCallerIdentity` runs for every context (`read.rs`).
//! 2. Each context's region is read in parallel, a few at a time: VPCs, their DNS attributes,
//!    DHCP options and route tables, and the zone mapping (`read_ec2.rs`). The hub's region
//!    also reads the subnets, endpoint services, endpoints, security groups and requested
//!    peerings. The spokes' regions read the peerings they accept.
//! 3. Route 53 is read alongside: zones by name and through every stack VPC, their tags, and
//!    the record sets of the private ones (`read_route53.rs`).
//! 4. Everything is normalized as [`linkplan_engine::observed`] documents and merged.
//!
//! # How a step is applied
//! 1. [`Provider::apply`] picks the module of the step's kind: `ec2.rs` (VPC attributes,
//!    security groups, ingress rules), `endpoint.rs`, `peering.rs` (connections, acceptance,
//!    routes) or `route53.rs` (zone, records, associations, authorizations).
//! 2. A create of a security group, endpoint or peering first looks for the object an earlier
//!    attempt of the same step made, by its tags, and a zone create looks by caller reference.
//!    Then the API is called with the step's idempotency token where the API takes one. For
//!    calls that take none, `retry.rs` narrows the SDK's retries to throttling. The other
//!    creates are idempotent as they are: a duplicate rule or route counts as done, and
//!    records are written with `UPSERT`.
//! 3. The step then waits (`wait.rs`) until the object is usable, and returns its outputs.
//! 4. [`Provider::undo`] reverses a completed step and waits until that has taken effect.
//!    [`Provider::find_created`] finds what a create step may have left behind.
//!
//! Every SDK error becomes a [`ProviderError`] with the service, operation, region, AWS error
//! code, request id and attempt count (`errors.rs`).

#![allow(
    clippy::result_large_err,
    reason = "the Provider trait fixes the error type to the engine's ProviderError (152 bytes); \
              boxing it inside the crate would only add a conversion at every trait method"
)]

mod backend_s3;
pub mod discover;
mod ec2;
mod endpoint;
mod errors;
pub mod iam;
mod interfaces;
mod metrics;
mod normalize;
mod peering;
mod read;
mod read_ec2;
mod read_route53;
mod retry;
mod route53;
mod sdk_config;
mod steps;
mod wait;

use async_trait::async_trait;
use linkplan_engine::observed::Observed;
use linkplan_engine::provider::{CallCounts, Outputs, Provider, ProviderError, StepRequest};
use linkplan_engine::resource::Resource;
use linkplan_engine::stack::{Context, Stack};
use linkplan_engine::step::Action;
use linkplan_engine::verify::NetworkInterfaceState;
use tracing::Instrument;

pub use crate::backend_s3::S3Backend;
use crate::sdk_config::Clients;
pub use crate::sdk_config::{ProviderOptions, Timeouts, endpoint_url_problem};
use crate::steps::{Phase, StepCall};

/// The provider over the AWS SDK.
#[derive(Debug)]
pub struct AwsProvider {
    clients: Clients,
}

impl AwsProvider {
    /// Builds one EC2 client per context region+credentials and one Route 53 client per
    /// credentials.
    ///
    /// # Errors
    /// `InvalidRequest` when an endpoint override reaches some services but not others (for
    /// example `AWS_ENDPOINT_URL_EC2` set without `AWS_ENDPOINT_URL_ROUTE_53`). Credentials are
    /// not checked here: the first call that needs them fails instead.
    pub async fn new(
        contexts: &[Context],
        options: &ProviderOptions,
    ) -> Result<Self, ProviderError> {
        let clients = Clients::build(contexts, options).await?;
        tracing::debug!(
            contexts = contexts.len(),
            endpoint = clients.endpoint_url.as_deref().unwrap_or("AWS default"),
            "built AWS clients"
        );
        Ok(AwsProvider { clients })
    }
}

#[async_trait]
impl Provider for AwsProvider {
    async fn read(&self, stack: &Stack) -> Result<Observed, ProviderError> {
        let span = tracing::info_span!("read", stack = %stack.name);
        read::read(&self.clients, stack).instrument(span).await
    }

    async fn apply(&self, request: &StepRequest<'_>) -> Result<Outputs, ProviderError> {
        let call = StepCall {
            clients: &self.clients,
            request,
            phase: Phase::Apply,
        };
        let span = step_span("apply", request);
        let address = request.step.address.to_string();
        let step = async {
            match request.step.resource() {
                Resource::VpcAttribute(_) => ec2::apply_vpc_attribute(&call).await,
                Resource::SecurityGroup(_) => ec2::apply_security_group(&call).await,
                Resource::IngressRule(_) => ec2::apply_ingress_rule(&call).await,
                Resource::Endpoint(_) => endpoint::apply(&call).await,
                Resource::HostedZone(_) => route53::apply_zone(&call).await,
                Resource::AliasRecords(_) => route53::apply_records(&call).await,
                Resource::PeeringConnection(_) => peering::apply_connection(&call).await,
                Resource::PeeringAcceptance(_) => peering::apply_acceptance(&call).await,
                Resource::Route(_) => peering::apply_route(&call).await,
                Resource::ZoneAssociation(_) => route53::apply_association(&call).await,
                Resource::AssociationAuthorization(_) => route53::apply_authorization(&call).await,
            }
        };
        metrics::in_step(address, step.instrument(span)).await
    }

    async fn undo(
        &self,
        request: &StepRequest<'_>,
        outputs: &Outputs,
    ) -> Result<(), ProviderError> {
        let call = StepCall {
            clients: &self.clients,
            request,
            phase: Phase::Undo,
        };
        let span = step_span("undo", request);
        async {
            match request.step.resource() {
                Resource::VpcAttribute(_) => ec2::undo_vpc_attribute(&call).await,
                Resource::SecurityGroup(_) => ec2::undo_security_group(&call, outputs).await,
                Resource::IngressRule(_) => ec2::undo_ingress_rule(&call).await,
                Resource::Endpoint(_) => endpoint::undo(&call, outputs).await,
                Resource::HostedZone(_) => route53::undo_zone(&call, outputs).await,
                Resource::AliasRecords(_) => route53::undo_records(&call).await,
                Resource::PeeringConnection(_) => peering::undo_connection(&call, outputs).await,
                Resource::PeeringAcceptance(_) => peering::undo_acceptance(&call).await,
                Resource::Route(_) => peering::undo_route(&call).await,
                Resource::ZoneAssociation(_) => route53::undo_association(&call).await,
                Resource::AssociationAuthorization(_) => route53::undo_authorization(&call).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Looks for the object of a create or replace step by the step's tags, the zone's caller
    /// reference, or content (rules, routes, records, associations). Other steps create
    /// nothing, so this returns `None` for them.
    ///
    /// It does not wait: a found endpoint may still be pending, and a found peering may not be
    /// accepted yet. Outputs are those `apply` returns, as far as the object has them (an
    /// endpoint without a regional DNS entry has only `id`).
    async fn find_created(
        &self,
        request: &StepRequest<'_>,
    ) -> Result<Option<Outputs>, ProviderError> {
        if !matches!(request.step.action, Action::Create | Action::Replace) {
            return Ok(None);
        }
        let call = StepCall {
            clients: &self.clients,
            request,
            phase: Phase::FindCreated,
        };
        let span = step_span("find_created", request);
        async {
            match request.step.resource() {
                Resource::VpcAttribute(_) => Ok(None),
                Resource::SecurityGroup(_) => ec2::find_security_group(&call).await,
                Resource::IngressRule(_) => ec2::find_ingress_rule(&call).await,
                Resource::Endpoint(_) => endpoint::find_created(&call).await,
                Resource::HostedZone(_) => route53::find_zone(&call).await,
                Resource::AliasRecords(_) => route53::find_records(&call).await,
                Resource::PeeringConnection(_) => peering::find_connection(&call).await,
                Resource::PeeringAcceptance(_) => peering::find_acceptance(&call).await,
                Resource::Route(_) => peering::find_route(&call).await,
                Resource::ZoneAssociation(_) => route53::find_association(&call).await,
                Resource::AssociationAuthorization(_) => route53::find_authorization(&call).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn read_network_interfaces(
        &self,
        context: &Context,
        ids: &[String],
    ) -> Result<Vec<NetworkInterfaceState>, ProviderError> {
        let client = self.clients.ec2(context)?;
        interfaces::describe_network_interfaces(client, ids).await
    }

    fn endpoint_url(&self) -> Option<String> {
        self.clients.endpoint_url.clone()
    }

    /// Counts every call of the provider's EC2, Route 53 and STS clients, reads included;
    /// `steps` has the calls of `apply` only.
    fn call_counts(&self) -> CallCounts {
        self.clients.metrics.snapshot()
    }
}

fn step_span(operation: &str, request: &StepRequest<'_>) -> tracing::Span {
    let step = request.step;
    tracing::info_span!(
        "step",
        operation,
        address = %step.address,
        action = ?step.action,
        region = %step.context.region
    )
}
