//! `linkplan completions SHELL`: prints a completion script for the shell, generated from the
//! same argument definitions the command line parses with.

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs};
use crate::error::CliError;
use crate::exit;

pub fn run(args: &CompletionsArgs) -> Result<u8, CliError> {
    let mut command = Cli::command();
    // clap_complete panics when its writer fails, so the script is built in memory first.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "linkplan", &mut script);
    super::write_stdout(&script)?;
    Ok(exit::OK)
}
