//! The engine of linkplan: config, resource graph, diff, plan file and apply executor.
//!
//! It models resources, addresses, graphs, plans and journals, and reaches AWS only through the
//! [`provider::Provider`] trait. It depends on neither the AWS SDK nor a terminal.
//!
//! # How a plan is made
//! 1. [`config::load`] parses `linkplan.toml` and checks it offline into a [`stack::Stack`].
//! 2. The provider reads the live state of everything the stack names or owns
//!    ([`observed::Observed`]), absent objects included.
//! 3. [`checks::check`] looks for problems only the live state shows, and collects them all.
//! 4. [`planner::plan`] diffs the wanted objects against the observed ones into [`step::Step`]s.
//! 5. [`graph::StepGraph`] orders the steps by their dependencies and rejects cycles.
//! 6. [`plan_file`] writes the steps, the stack and a snapshot of what was read, with a digest.
//!
//! # How a plan is applied
//! 1. [`plan_file::read`] checks the format version and the digest.
//! 2. The live state is read again and compared with the plan's snapshot ([`staleness`]).
//! 3. [`apply::Executor`] runs the steps in dependency order, independent ones in parallel,
//!    journaling each intent before its call and each outcome after it.
//! 4. When a step fails, no new step starts, and the completed ones are undone in reverse.

pub mod apply;
pub mod checks;
pub mod config;
pub mod diagnostics;
pub mod graph;
pub mod journal;

pub mod observed;
pub mod plan_file;
pub mod planner;

pub mod provider;
pub mod resource;
pub mod saas;
pub mod stack;
pub mod staleness;
pub mod step;
pub mod verify;
