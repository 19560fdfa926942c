//! Errors of a command, printed as `error:` and `help:` lines.

use std::fmt;

use linkplan_engine::diagnostics::Diagnostics;

use crate::exit;

/// A command's failure: what went wrong, what to do, and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    /// Lines printed under the message, each as `  - detail`.
    pub details: Vec<String>,
    pub help: Option<String>,
    pub code: u8,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            details: Vec::new(),
            help: None,
            code: exit::ERROR,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Wraps diagnostics that were already formatted in full, for a command that writes a file
    /// and wrote nothing because of them.
    pub fn diagnostics(diagnostics: &Diagnostics) -> Self {
        Self::diagnostics_with_outcome(diagnostics, Some("nothing was written"))
    }

    /// Wraps diagnostics that were already formatted in full, followed by their count and by
    /// `outcome`, what the command did not do because of them, such as "no name was resolved".
    pub fn diagnostics_with_outcome(diagnostics: &Diagnostics, outcome: Option<&str>) -> Self {
        let errors = diagnostics.errors().count();
        let noun = if errors == 1 { "error" } else { "errors" };
        let outcome = outcome.map(|text| format!("; {text}")).unwrap_or_default();
        CliError {
            message: format!("{diagnostics}\n{errors} {noun}{outcome}"),
            details: Vec::new(),
            help: None,
            code: exit::ERROR,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.starts_with("error:") || self.message.starts_with("warning:") {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "error: {}", self.message)?;
        }
        for detail in &self.details {
            write!(f, "\n  - {detail}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\nhelp: {help}")?;
        }
        Ok(())
    }
}
