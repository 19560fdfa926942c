//! `linkplan validate`: the offline checks of the config, with no AWS call.

use linkplan_engine::config;

use crate::args::ConfigArgs;
use crate::error::CliError;
use crate::exit;

pub fn run(args: &ConfigArgs) -> Result<u8, CliError> {
    // validate never writes anything, so the error count is printed alone.
    let loaded =
        config::load(&args.config).map_err(|d| CliError::diagnostics_with_outcome(&d, None))?;
    for warning in loaded.warnings.warnings() {
        eprintln!("{warning}");
    }
    let spokes = loaded.stack.spokes.len();
    println!(
        "Config `{}` is valid: stack `{}`, {} endpoint services, {spokes} {}.",
        args.config.display(),
        loaded.stack.name,
        loaded.stack.services.len(),
        if spokes == 1 { "spoke" } else { "spokes" }
    );
    Ok(exit::OK)
}
