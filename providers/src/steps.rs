//! The parts every step implementation shares: the request, the clients, typed access to the step's
//! `before` and `after`, and the errors for steps the provider cannot perform.

use linkplan_engine::provider::{ErrorKind, Outputs, ProviderError, StepRequest};
use linkplan_engine::resource::{Resource, Value, outputs};
use linkplan_engine::step::{Action, Step};

use crate::sdk_config::{Clients, Ec2, Route53};

/// One `apply`, `undo` or `find_created` call for one step.
pub struct StepCall<'a> {
    pub clients: &'a Clients,
    pub request: &'a StepRequest<'a>,
    pub phase: Phase,
}

/// The provider method a [`StepCall`] serves, which its errors name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Apply,
    Undo,
    FindCreated,
}

impl<'a> StepCall<'a> {
    pub fn step(&self) -> &'a Step {
        self.request.step
    }

    pub fn action(&self) -> Action {
        self.request.step.action
    }

    /// Returns the EC2 client of the step's context.
    pub fn ec2(&self) -> Result<&'a Ec2, ProviderError> {
        self.clients.ec2(&self.request.step.context)
    }

    /// Returns the Route 53 client of the step's credentials.
    pub fn route53(&self) -> Result<&'a Route53, ProviderError> {
        self.clients.route53(&self.request.step.context)
    }

    /// Returns the step's `after` as kind `T`, picked by `pick`.
    pub fn after<T>(&self, pick: fn(&Resource) -> Option<&T>) -> Result<&'a T, ProviderError> {
        let resource = self.request.step.after.as_ref().and_then(pick);
        resource.ok_or_else(|| self.malformed("an `after` state"))
    }

    /// Returns the step's `before` as kind `T`, picked by `pick`.
    pub fn before<T>(&self, pick: fn(&Resource) -> Option<&T>) -> Result<&'a T, ProviderError> {
        let resource = self.request.step.before.as_ref().and_then(pick);
        resource.ok_or_else(|| self.malformed("a `before` state"))
    }

    /// Returns the id of the existing object the step changes (`step.id`).
    pub fn existing_id(&self) -> Result<&'a str, ProviderError> {
        self.request
            .step
            .id
            .as_deref()
            .ok_or_else(|| self.malformed("the id of the existing object"))
    }

    /// Returns output `key` of the step's earlier `apply`.
    pub fn output<'o>(&self, outputs: &'o Outputs, key: &str) -> Result<&'o str, ProviderError> {
        outputs.get(key).map(String::as_str).ok_or_else(|| {
            self.error(
                ErrorKind::Other,
                format!(
                    "cannot undo {}: the outputs of its apply have no `{key}`",
                    self.request.step.address
                ),
            )
        })
    }

    /// Returns the created object's id: the `id` output, recorded by `apply`.
    pub fn created_id<'o>(&self, outputs: &'o Outputs) -> Result<&'o str, ProviderError> {
        self.output(outputs, outputs::ID)
    }

    /// Returns the known value of `value`.
    pub fn known<'v>(&self, value: &'v Value) -> Result<&'v str, ProviderError> {
        value.require().map_err(|reference| {
            self.error(
                ErrorKind::Other,
                format!(
                    "step {} reached the provider with {reference}: the executor must resolve \
                     every reference first",
                    self.request.step.address
                ),
            )
        })
    }

    /// Returns the error for an action this kind does not support.
    pub fn unsupported(&self, verb: &str) -> ProviderError {
        let step = self.request.step;
        self.error(
            ErrorKind::InvalidRequest,
            format!(
                "linkplan-aws cannot {verb} {} step {} of kind {}",
                article(step.action),
                step.address,
                step.resource().kind()
            ),
        )
    }

    /// Builds an error about this step that did not come from an AWS response. It reads as
    /// "linkplan undo of the endpoint update in us-east-1 failed: MESSAGE".
    pub fn error(&self, kind: ErrorKind, message: impl Into<String>) -> ProviderError {
        let step = self.request.step;
        let object = step.resource().kind().replace('_', " ");
        let change = change_noun(step.action);
        let operation = match self.phase {
            Phase::Apply => format!("{object} {change}"),
            Phase::Undo => format!("undo of the {object} {change}"),
            Phase::FindCreated => format!("search for the {object} of an earlier attempt"),
        };
        ProviderError::new(kind, "linkplan", &operation, &step.context.region, message)
    }

    fn malformed(&self, missing: &str) -> ProviderError {
        let step = self.request.step;
        self.error(
            ErrorKind::Other,
            format!(
                "step {} ({:?} {}) has no {missing}: the plan is malformed",
                step.address,
                step.action,
                step.resource().kind()
            ),
        )
    }
}

/// Returns the noun for what `action` does to an object, such as "update".
fn change_noun(action: Action) -> &'static str {
    match action {
        Action::Create => "creation",
        Action::Update => "update",
        Action::Replace => "replacement",
        Action::Delete => "deletion",
        Action::Adopt => "adoption",
    }
}

fn article(action: Action) -> &'static str {
    match action {
        Action::Update | Action::Adopt => "an",
        Action::Create | Action::Replace | Action::Delete => "a",
    }
}

/// Returns outputs with only `id`.
pub fn id_output(id: &str) -> Outputs {
    Outputs::from([(outputs::ID.to_string(), id.to_string())])
}

/// Defines `$name`, which returns a resource of variant `$variant`, or `None` for any other.
macro_rules! picker {
    ($name:ident, $variant:ident, $type:ty) => {
        pub fn $name(resource: &Resource) -> Option<&$type> {
            match resource {
                Resource::$variant(inner) => Some(inner),
                _ => None,
            }
        }
    };
}

/// Pickers of each resource kind, for [`StepCall::after`] and [`StepCall::before`].
pub mod pick {
    use linkplan_engine::resource::*;

    picker!(vpc_attribute, VpcAttribute, VpcAttribute);
    picker!(security_group, SecurityGroup, SecurityGroup);
    picker!(ingress_rule, IngressRule, IngressRule);
    picker!(endpoint, Endpoint, Endpoint);
    picker!(hosted_zone, HostedZone, HostedZone);
    picker!(alias_records, AliasRecords, AliasRecords);
    picker!(peering_connection, PeeringConnection, PeeringConnection);
    picker!(peering_acceptance, PeeringAcceptance, PeeringAcceptance);
    picker!(route, Route, Route);
    picker!(zone_association, ZoneAssociation, ZoneAssociation);
    picker!(
        association_authorization,
        AssociationAuthorization,
        AssociationAuthorization
    );
}
