//! `linkplan validate`: the offline checks of the config, with no AWS call.

use linkplan_engine::config;

use crate::args::ConfigArgs;
use crate::error::CliError;
use crate::exit;

pub fn run(args: &ConfigArgs) -> Result<u8, CliError> {
    let loaded = config::load(&args.config).map_err(|d| CliError::diagnostics(&d))?;
    for warning in loaded.warnings.warnings() {
        eprintln!("{warning}");
    }
    println!(
        "Config `{}` is valid: stack `{}`, {} endpoint services, {} spokes.",
        args.config.display(),
        loaded.stack.name,
        loaded.stack.services.len(),
        loaded.stack.spokes.len()
    );
    Ok(exit::OK)
}
