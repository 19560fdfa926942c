//! Progress of an apply on stderr: one line per event, with the elapsed time, in the manner of
//! Terraform's apply output. Lines go out as events happen, so CI logs show where a run is.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use linkplan_engine::apply::ApplyObserver;
use linkplan_engine::provider::{Outputs, ProviderError};
use linkplan_engine::resource::{Address, outputs};
use linkplan_engine::step::{Action, Step};

use crate::render::Palette;

/// Prints each step's start, waits and end to stderr.
pub struct LinePrinter {
    palette: Palette,
    started: Mutex<BTreeMap<Address, Instant>>,
    last_wait: Mutex<BTreeMap<Address, String>>,
}

impl LinePrinter {
    pub fn new(palette: Palette) -> Self {
        LinePrinter {
            palette,
            started: Mutex::new(BTreeMap::new()),
            last_wait: Mutex::new(BTreeMap::new()),
        }
    }

    fn elapsed(&self, address: &Address) -> String {
        let started = self.started.lock().expect("progress lock");
        started
            .get(address)
            .map(|t| format!("{}s", t.elapsed().as_secs()))
            .unwrap_or_default()
    }

    fn line(&self, text: String) {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{text}");
    }
}

fn present_participle(action: Action) -> &'static str {
    match action {
        Action::Create => "Creating",
        Action::Update => "Modifying",
        Action::Replace => "Replacing",
        Action::Delete => "Destroying",
        Action::Adopt => "Adopting",
    }
}

impl ApplyObserver for LinePrinter {
    fn step_started(&self, step: &Step) {
        self.started
            .lock()
            .expect("progress lock")
            .insert(step.address.clone(), Instant::now());
        let id = step
            .id
            .as_deref()
            .map(|id| format!(" [id={id}]"))
            .unwrap_or_default();
        self.line(format!(
            "{}: {}...{id}",
            self.palette.bold.apply_to(&step.address),
            present_participle(step.action)
        ));
    }

    fn step_waiting(&self, address: &Address, status: &str) {
        let mut last = self.last_wait.lock().expect("progress lock");
        if last.get(address).map(String::as_str) == Some(status) {
            return;
        }
        last.insert(address.clone(), status.to_string());
        drop(last);
        self.line(format!(
            "{}: Still waiting, {} elapsed: {status}",
            self.palette.bold.apply_to(address),
            self.elapsed(address)
        ));
    }

    fn step_finished(&self, step: &Step, result: Result<&Outputs, &ProviderError>) {
        let elapsed = self.elapsed(&step.address);
        match result {
            Ok(done) => {
                let id = done
                    .get(outputs::ID)
                    .map(|id| format!(" [id={id}]"))
                    .unwrap_or_default();
                let verb = step.action.past_tense();
                let verb = format!("{}{}", verb[..1].to_uppercase(), &verb[1..]);
                self.line(format!(
                    "{}: {} after {elapsed}{id}",
                    self.palette.bold.apply_to(&step.address),
                    self.palette.action(step.action).apply_to(verb)
                ));
            }
            Err(error) => self.line(format!(
                "{}: {} after {elapsed}: {error}",
                self.palette.bold.apply_to(&step.address),
                self.palette.delete.apply_to("Failed")
            )),
        }
    }

    fn undo_started(&self, address: &Address) {
        self.started
            .lock()
            .expect("progress lock")
            .insert(address.clone(), Instant::now());
        self.line(format!(
            "{}: Rolling back...",
            self.palette.bold.apply_to(address)
        ));
    }

    fn undo_finished(&self, address: &Address, result: Result<(), &ProviderError>) {
        let elapsed = self.elapsed(address);
        match result {
            Ok(()) => self.line(format!(
                "{}: Rolled back after {elapsed}",
                self.palette.bold.apply_to(address)
            )),
            Err(error) => self.line(format!(
                "{}: {} after {elapsed}: {error}",
                self.palette.bold.apply_to(address),
                self.palette.delete.apply_to("Rollback failed")
            )),
        }
    }
}
