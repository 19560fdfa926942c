//! Progress on stderr while linkplan waits on AWS, in two forms.
//!
//! - On a terminal, each running step and each read of AWS has a spinner with its elapsed time
//!   (indicatif), and a finished step leaves one line, in the manner of Terraform's apply.
//! - Anywhere else (CI logs, `2> file`), every event is one plain line that starts with its
//!   UTC time, such as `2026-01-02T03:04:05Z endpoint.agents: Creating...`, written as the
//!   event happens so that a log shows where a run is. The same lines are used on a terminal
//!   when `-v` or `RUST_LOG` turns logging on, since log lines would break the redraws.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use linkplan_engine::apply::ApplyObserver;
use linkplan_engine::provider::{Outputs, ProviderError};
use linkplan_engine::resource::{Address, outputs};
use linkplan_engine::step::{Action, Step};

use crate::render::Palette;

/// Time between two redraws of a spinner.
const TICK: Duration = Duration::from_millis(120);

/// Whether spinners may be drawn at all; off while logging is on, whose lines on stderr would
/// break the spinners' redraws.
static SPINNERS_ALLOWED: AtomicBool = AtomicBool::new(true);

/// Turns spinners off for the rest of the process, so progress is written as timestamped lines
/// even on a terminal.
pub fn disable_spinners() {
    SPINNERS_ALLOWED.store(false, Ordering::Relaxed);
}

/// Reports whether progress is drawn with spinners: stderr is a terminal and spinners were not
/// turned off.
pub fn draws_spinners() -> bool {
    SPINNERS_ALLOWED.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// Returns the current UTC time to the second, as RFC 3339.
fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Formats `duration` in seconds with one decimal, as `1.3s`.
fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// Writes one plain progress line to stderr, prefixed with the time.
fn timestamped_line(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{} {text}", timestamp());
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
        .expect("the spinner template is valid")
}

/// Awaits `work` while showing `message`, such as "Reading the live state of stack `hub`".
///
/// On a terminal a spinner shows the message and the time elapsed, and a line with the total
/// time and whether `work` succeeded replaces it at the end. Elsewhere one timestamped line is
/// written before and one after.
pub async fn wait_on<T, E>(
    message: &str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let spinner = if draws_spinners() {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(spinner_style())
            .with_message(format!("{message}..."));
        bar.enable_steady_tick(TICK);
        Some(bar)
    } else {
        timestamped_line(&format!("{message}..."));
        None
    };

    let result = work.await;

    let outcome = if result.is_ok() { "done" } else { "failed" };
    let line = format!("{message}: {outcome} after {}", seconds(started.elapsed()));
    match spinner {
        Some(bar) => {
            bar.finish_and_clear();
            eprintln!("{line}");
        }
        None => timestamped_line(&line),
    }
    result
}

/// Spinners of the steps running now, on a terminal.
struct Spinners {
    multi: MultiProgress,
    running: Mutex<BTreeMap<Address, ProgressBar>>,
}

impl Spinners {
    fn start(&self, address: &Address, message: String) {
        let bar = self.multi.add(
            ProgressBar::new_spinner()
                .with_style(spinner_style())
                .with_message(message),
        );
        bar.enable_steady_tick(TICK);
        self.running
            .lock()
            .expect("progress lock")
            .insert(address.clone(), bar);
    }

    fn update(&self, address: &Address, message: String) {
        if let Some(bar) = self.running.lock().expect("progress lock").get(address) {
            bar.set_message(message);
        }
    }

    /// Removes the spinner of `address` and prints `line` above the spinners left.
    fn finish(&self, address: &Address, line: &str) {
        let bar = self.running.lock().expect("progress lock").remove(address);
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        // println writes above the bars, or directly when none is drawn.
        if self.multi.println(line).is_err() {
            eprintln!("{line}");
        }
    }
}

/// Reports an apply's or a rollback's steps on stderr: a spinner per running step on a
/// terminal, timestamped lines for every start, wait and end elsewhere.
pub struct LinePrinter {
    palette: Palette,
    /// `None` when stderr is not a terminal.
    spinners: Option<Spinners>,
    started: Mutex<BTreeMap<Address, Instant>>,
    last_wait: Mutex<BTreeMap<Address, String>>,
}

impl LinePrinter {
    /// Creates a printer for stderr. Colors of `palette` are used only when stderr is a
    /// terminal, so that `2> apply.log` stays plain text.
    pub fn new(palette: Palette) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let spinners = draws_spinners().then(|| Spinners {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            running: Mutex::new(BTreeMap::new()),
        });
        LinePrinter {
            palette: if terminal {
                palette
            } else {
                Palette::new(false)
            },
            spinners,
            started: Mutex::new(BTreeMap::new()),
            last_wait: Mutex::new(BTreeMap::new()),
        }
    }

    fn start_timer(&self, address: &Address) {
        self.started
            .lock()
            .expect("progress lock")
            .insert(address.clone(), Instant::now());
    }

    fn elapsed(&self, address: &Address) -> String {
        let started = self.started.lock().expect("progress lock");
        started
            .get(address)
            .map(|t| format!("{}s", t.elapsed().as_secs()))
            .unwrap_or_default()
    }

    /// Shows that `address` started: a spinner on a terminal, a line elsewhere.
    fn started(&self, address: &Address, text: String) {
        self.start_timer(address);
        let text = format!("{}: {text}", self.palette.bold.apply_to(address));
        match &self.spinners {
            Some(spinners) => spinners.start(address, text),
            None => timestamped_line(&text),
        }
    }

    /// Shows the end of `address` with the line `text`.
    fn finished(&self, address: &Address, text: String) {
        let text = format!("{}: {text}", self.palette.bold.apply_to(address));
        match &self.spinners {
            Some(spinners) => spinners.finish(address, &text),
            None => timestamped_line(&text),
        }
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

fn id_suffix(id: Option<&str>) -> String {
    id.map(|id| format!(" [id={id}]")).unwrap_or_default()
}

impl ApplyObserver for LinePrinter {
    fn step_started(&self, step: &Step) {
        let text = format!(
            "{}...{}",
            present_participle(step.action),
            id_suffix(step.id.as_deref())
        );
        self.started(&step.address, text);
    }

    fn step_waiting(&self, address: &Address, status: &str) {
        let mut last = self.last_wait.lock().expect("progress lock");
        if last.get(address).map(String::as_str) == Some(status) {
            return;
        }
        last.insert(address.clone(), status.to_string());
        drop(last);
        let address_text = self.palette.bold.apply_to(address);
        match &self.spinners {
            Some(spinners) => spinners.update(address, format!("{address_text}: {status}")),
            None => timestamped_line(&format!(
                "{address_text}: Still waiting, {} elapsed: {status}",
                self.elapsed(address)
            )),
        }
    }

    fn step_finished(&self, step: &Step, result: Result<&Outputs, &ProviderError>) {
        let elapsed = self.elapsed(&step.address);
        let text = match result {
            Ok(done) => {
                let verb = step.action.past_tense();
                let verb = format!("{}{}", verb[..1].to_uppercase(), &verb[1..]);
                format!(
                    "{} after {elapsed}{}",
                    self.palette.action(step.action).apply_to(verb),
                    id_suffix(done.get(outputs::ID).map(String::as_str))
                )
            }
            Err(error) => format!(
                "{} after {elapsed}: {error}",
                self.palette.delete.apply_to("Failed")
            ),
        };
        self.finished(&step.address, text);
    }

    fn undo_started(&self, address: &Address) {
        self.started(address, "Rolling back...".to_string());
    }

    fn undo_finished(&self, address: &Address, result: Result<(), &ProviderError>) {
        let elapsed = self.elapsed(address);
        let text = match result {
            Ok(()) => format!("Rolled back after {elapsed}"),
            Err(error) => format!(
                "{} after {elapsed}: {error}",
                self.palette.delete.apply_to("Rollback failed")
            ),
        };
        self.finished(address, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_rfc3339_utc() {
        let stamp = timestamp();
        assert_eq!(stamp.len(), "2026-01-02T03:04:05Z".len(), "{stamp}");
        assert!(stamp.ends_with('Z'), "{stamp}");
        assert_eq!(&stamp[10..11], "T", "{stamp}");
    }

    #[test]
    fn seconds_have_one_decimal() {
        assert_eq!(seconds(Duration::from_millis(1340)), "1.3s");
        assert_eq!(seconds(Duration::ZERO), "0.0s");
    }
}
