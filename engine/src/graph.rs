//! The dependency graph of a plan's steps, built with petgraph.
//!
//! An edge runs from a step to each step that depends on it, so a topological order is an
//! order in which the steps can run. Errors name addresses, never node indices, and a cycle is
//! reported from its smallest address so that it reads the same on every run.

use std::collections::{BTreeSet, HashMap};

use petgraph::Direction;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::resource::Address;
use crate::step::Step;

/// An error that keeps a set of steps from being ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A cycle, each address depending on the next and the last on the first.
    #[error("dependency cycle: {} (each step depends on the next)", format_cycle(.0))]
    Cycle(Vec<Address>),
    #[error("step `{step}` depends on `{missing}`, which is not in the plan")]
    MissingDependency { step: Address, missing: Address },
    #[error("two steps have the address `{0}`")]
    DuplicateAddress(Address),
}

fn format_cycle(cycle: &[Address]) -> String {
    let mut parts: Vec<String> = cycle.iter().map(ToString::to_string).collect();
    if let Some(first) = cycle.first() {
        parts.push(first.to_string());
    }
    parts.join(" -> ")
}

/// Steps with their dependencies as a directed graph.
///
/// Node `i` is step `i` of the slice the graph was built from.
pub struct StepGraph {
    graph: DiGraph<Address, ()>,
    nodes: HashMap<Address, NodeIndex>,
}

impl StepGraph {
    /// Builds the graph of `steps`, checking that every dependency is a step of the plan.
    ///
    /// # Errors
    /// A repeated address or a dependency on an address that is not a step.
    pub fn new(steps: &[Step]) -> Result<Self, GraphError> {
        let mut graph = DiGraph::with_capacity(steps.len(), steps.len());
        let mut nodes = HashMap::with_capacity(steps.len());
        for step in steps {
            let node = graph.add_node(step.address.clone());
            if nodes.insert(step.address.clone(), node).is_some() {
                return Err(GraphError::DuplicateAddress(step.address.clone()));
            }
        }
        for (index, step) in steps.iter().enumerate() {
            let to = NodeIndex::new(index);
            for dependency in &step.depends_on {
                let Some(&from) = nodes.get(dependency) else {
                    return Err(GraphError::MissingDependency {
                        step: step.address.clone(),
                        missing: dependency.clone(),
                    });
                };
                graph.add_edge(from, to, ());
            }
        }
        Ok(StepGraph { graph, nodes })
    }

    /// Returns the addresses in an order where each step comes after its dependencies; among
    /// steps free to run at the same time, by address.
    ///
    /// # Errors
    /// A cycle, listed from its smallest address in dependency order.
    pub fn order(&self) -> Result<Vec<Address>, GraphError> {
        let order = self.order_nodes()?;
        Ok(order.into_iter().map(|n| self.graph[n].clone()).collect())
    }

    /// Returns the node indices in the order of [`StepGraph::order`].
    fn order_nodes(&self) -> Result<Vec<NodeIndex>, GraphError> {
        if let Err(cycle) = toposort(&self.graph, None) {
            return Err(GraphError::Cycle(self.cycle_through(cycle.node_id())));
        }
        // Kahn's algorithm with a ready set sorted by address makes the order independent of
        // the order the steps were given in. The set holds references, so no address is copied.
        let mut waiting: Vec<usize> = self
            .graph
            .node_indices()
            .map(|n| {
                self.graph
                    .neighbors_directed(n, Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: BTreeSet<(&Address, NodeIndex)> = self
            .graph
            .node_indices()
            .filter(|n| waiting[n.index()] == 0)
            .map(|n| (&self.graph[n], n))
            .collect();
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some((_, node)) = ready.pop_first() {
            for next in self.graph.neighbors_directed(node, Direction::Outgoing) {
                let count = &mut waiting[next.index()];
                *count -= 1;
                if *count == 0 {
                    ready.insert((&self.graph[next], next));
                }
            }
            order.push(node);
        }
        Ok(order)
    }

    fn cycle_through(&self, start: NodeIndex) -> Vec<Address> {
        let component = tarjan_scc(&self.graph)
            .into_iter()
            .find(|component| component.contains(&start))
            .unwrap_or_else(|| vec![start]);
        let members: BTreeSet<NodeIndex> = component.iter().copied().collect();
        let first = *component
            .iter()
            .min_by(|a, b| self.graph[**a].cmp(&self.graph[**b]))
            .expect("a component has a node");

        // Walk from each step to one of its dependencies inside the component, the smallest
        // address each time, until the walk returns to a step it has seen.
        let mut cycle = vec![first];
        let mut current = first;
        loop {
            let next = self
                .graph
                .neighbors_directed(current, Direction::Incoming)
                .filter(|n| members.contains(n))
                .min_by(|a, b| self.graph[*a].cmp(&self.graph[*b]))
                .expect("a node in a cycle has a successor in it");
            if let Some(position) = cycle.iter().position(|n| *n == next) {
                cycle.drain(..position);
                break;
            }
            cycle.push(next);
            current = next;
        }
        cycle.into_iter().map(|n| self.graph[n].clone()).collect()
    }

    /// Returns the addresses of the steps that depend on `address`, directly.
    pub fn dependents(&self, address: &Address) -> Vec<Address> {
        let Some(&node) = self.nodes.get(address) else {
            return Vec::new();
        };
        let mut dependents: Vec<Address> = self
            .graph
            .neighbors_directed(node, Direction::Outgoing)
            .map(|n| self.graph[n].clone())
            .collect();
        dependents.sort();
        dependents
    }

    /// Returns the length, in steps, of the longest chain of dependent steps.
    pub fn longest_chain(&self) -> usize {
        let Ok(order) = self.order_nodes() else {
            return 0;
        };
        let mut depth = vec![0; self.graph.node_count()];
        for node in order {
            let before = self
                .graph
                .neighbors_directed(node, Direction::Incoming)
                .map(|n| depth[n.index()])
                .max()
                .unwrap_or(0);
            depth[node.index()] = before + 1;
        }
        depth.into_iter().max().unwrap_or(0)
    }
}

/// Returns `steps` in the order of [`StepGraph::order`]: each step after its dependencies, and
/// among steps free to run at the same time, by address.
///
/// # Errors
/// A repeated address, a dependency that is not a step, or a cycle.
pub fn order_steps(steps: Vec<Step>) -> Result<Vec<Step>, GraphError> {
    let order = StepGraph::new(&steps)?.order_nodes()?;
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .map(|node| {
            slots[node.index()]
                .take()
                .expect("an order visits each node once")
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{Resource, VpcAttribute, VpcDnsAttribute};
    use crate::stack::Context;
    use crate::step::Action;

    fn step(address: &str, depends_on: &[&str]) -> Step {
        Step {
            address: Address::from(address),
            action: Action::Update,
            context: Context {
                region: "us-east-1".into(),
                credentials: Default::default(),
            },
            id: None,
            reason: None,
            depends_on: depends_on.iter().map(|a| Address::from(*a)).collect(),
            before: None,
            after: Some(Resource::VpcAttribute(VpcAttribute {
                vpc_id: "vpc-1".into(),
                attribute: VpcDnsAttribute::DnsSupport,
                enabled: true,
            })),
        }
    }

    fn order(steps: &[Step]) -> Vec<String> {
        StepGraph::new(steps)
            .unwrap()
            .order()
            .unwrap()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn order_follows_dependencies() {
        let steps = [
            step("records", &["zone", "endpoint.agents"]),
            step("zone", &["vpc.hub.dns_hostnames"]),
            step("endpoint.agents", &[]),
            step("vpc.hub.dns_hostnames", &["vpc.hub.dns_support"]),
            step("vpc.hub.dns_support", &[]),
        ];
        assert_eq!(
            order(&steps),
            [
                "endpoint.agents",
                "vpc.hub.dns_support",
                "vpc.hub.dns_hostnames",
                "zone",
                "records"
            ]
        );
    }

    #[test]
    fn order_steps_moves_steps_into_order() {
        let steps = vec![
            step("records", &["zone"]),
            step("zone", &[]),
            step("endpoint", &[]),
        ];
        let ordered = order_steps(steps).unwrap();
        let addresses: Vec<&str> = ordered.iter().map(|s| s.address.as_str()).collect();
        assert_eq!(addresses, ["endpoint", "zone", "records"]);
        assert_eq!(ordered[2].depends_on, [Address::from("zone")]);
    }

    #[test]
    fn order_ignores_input_order() {
        let forward = [step("a", &[]), step("b", &["a"]), step("c", &[])];
        let backward = [step("c", &[]), step("b", &["a"]), step("a", &[])];
        assert_eq!(order(&forward), order(&backward));
    }

    #[test]
    fn cycle_is_reported_from_smallest_address() {
        let steps = [
            step("zone", &["records"]),
            step("records", &["endpoint"]),
            step("endpoint", &["zone"]),
        ];
        let error = StepGraph::new(&steps).unwrap().order().unwrap_err();
        assert_eq!(
            error.to_string(),
            "dependency cycle: endpoint -> zone -> records -> endpoint (each step depends on the next)"
        );
    }

    #[test]
    fn missing_dependency_is_named() {
        let error = StepGraph::new(&[step("records", &["zone"])]).err().unwrap();
        assert_eq!(
            error.to_string(),
            "step `records` depends on `zone`, which is not in the plan"
        );
    }

    #[test]
    fn longest_chain_counts_steps() {
        let steps = [
            step("a", &[]),
            step("b", &["a"]),
            step("c", &["b"]),
            step("d", &[]),
        ];
        assert_eq!(StepGraph::new(&steps).unwrap().longest_chain(), 3);
    }
}
