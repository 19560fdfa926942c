//! `linkplan show`: prints a plan file again, after checking it.

use linkplan_engine::plan_file;

use crate::args::{Format, ShowArgs};
use crate::error::CliError;
use crate::exit;
use crate::render::{self, Palette};

pub fn run(args: &ShowArgs, palette: &Palette) -> Result<u8, CliError> {
    let plan =
        plan_file::read(&args.plan).map_err(|e| CliError::new(e.to_string()).help(e.help()))?;
    match args.format {
        Format::Text => print!(
            "{}{}",
            render::plan_text(&plan, palette),
            render::warnings_text(&plan, palette)
        ),
        Format::Json => print!("{}", render::plan_json(&plan)),
        Format::Markdown => print!("{}", render::plan_markdown(&plan)),
    }
    Ok(exit::OK)
}
