//! The plan file: a reviewed plan as deterministic TOML, with a digest over its body.
//!
//! The same config and live state give a byte-identical file: steps in execution order, maps
//! sorted, no timestamps. The last table, `[integrity]`, contains the SHA-256 of every byte above
//! it, so a file edited by hand is refused. `format_version` is checked before anything else is
//! read, so a file from another version is refused by name rather than misread.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::graph::{self, GraphError};
use crate::observed::{Observed, hex};
use crate::planner::{Mode, Planned};
use crate::resource::Address;
use crate::stack::{Context, Stack};
use crate::step::{Action, Drift, Step};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;

const INTEGRITY_HEADER: &str = "\n[integrity]\n";

/// A plan as written to and read from a plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    /// Version of linkplan that wrote the plan.
    pub linkplan_version: String,
    pub stack_name: String,
    pub mode: Mode,
    /// SHA-256 of the config file the plan came from.
    pub config_digest: String,
    /// API endpoint override the plan was made against; absent for the AWS default endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The id of the stack's last applied plan when this one was made. Two plans of the same
    /// state made after different applies differ in it, so each can be applied once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_plan: Option<String>,
    /// The account behind each context's credentials when planned.
    pub accounts: Vec<PlanAccount>,
    pub summary: Summary,
    /// Wanted objects that already matched, sorted.
    pub unchanged: Vec<Address>,
    /// Warnings printed when planning.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Objects changed outside linkplan, and what the plan does about each.
    #[serde(default, rename = "drift", skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
    /// The validated config, so apply can re-read the live state without the config file.
    pub stack: Stack,
    /// Steps in execution order.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    /// Every object and query read, absent ones included, by key, as normalized compact JSON
    /// ([`crate::observed::Observed::snapshot`]). Apply compares it with a new read.
    pub observed: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanAccount {
    #[serde(flatten)]
    pub context: Context,
    pub account_id: String,
}

/// Step counts by action. A replacement counts as one add and one destroy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub adopt: usize,
    pub unchanged: usize,
}

impl Summary {
    pub fn of(steps: &[Step], unchanged: usize) -> Self {
        let mut summary = Summary {
            unchanged,
            ..Summary::default()
        };
        for step in steps {
            match step.action {
                Action::Create => summary.add += 1,
                Action::Update => summary.change += 1,
                Action::Replace => {
                    summary.add += 1;
                    summary.destroy += 1;
                }
                Action::Delete => summary.destroy += 1,
                Action::Adopt => summary.adopt += 1,
            }
        }
        summary
    }

    pub fn has_changes(&self) -> bool {
        self.add + self.change + self.destroy + self.adopt > 0
    }
}

/// Where a plan comes from, besides the stack and the live state: the facts `linkplan plan`
/// records so that apply can reject a plan used out of place.
#[derive(Debug, Clone, Default)]
pub struct PlanOrigin {
    /// `sha256:` and the hex SHA-256 of the config file's text.
    pub config_digest: String,
    /// API endpoint override in use; `None` for the AWS default endpoints.
    pub endpoint_url: Option<String>,
    /// Id of the stack's last applied plan, if any.
    pub after_plan: Option<String>,
}

impl Plan {
    /// Builds the plan of `planned`: its steps in dependency order, the unchanged addresses
    /// sorted, the account behind each context `observed` read, and the snapshot of what it
    /// read for `stack`.
    ///
    /// # Errors
    /// The planned steps cannot be ordered (a repeated address, a dependency that is not a
    /// step, or a cycle), which is a bug in the planner.
    pub fn new(
        stack: &Stack,
        observed: &Observed,
        planned: Planned,
        mode: Mode,
        warnings: Vec<String>,
        origin: PlanOrigin,
    ) -> Result<Plan, GraphError> {
        let steps = graph::order_steps(planned.steps)?;
        let mut unchanged = planned.unchanged;
        unchanged.sort();
        unchanged.dedup();
        let accounts = observed
            .identities
            .iter()
            .map(|(context, identity)| PlanAccount {
                context: context.clone(),
                account_id: identity.account_id.clone(),
            })
            .collect();
        Ok(Plan {
            format_version: FORMAT_VERSION,
            linkplan_version: env!("CARGO_PKG_VERSION").to_string(),
            stack_name: stack.name.clone(),
            mode,
            config_digest: origin.config_digest,
            endpoint_url: origin.endpoint_url,
            after_plan: origin.after_plan,
            accounts,
            summary: Summary::of(&steps, unchanged.len()),
            unchanged,
            warnings,
            drift: planned.drift,
            stack: stack.clone(),
            steps,
            observed: observed.snapshot(stack),
        })
    }

    /// Returns the plan's id: the first 16 hex digits of the digest of its body. Idempotency
    /// tokens and journals are named after it.
    pub fn id(&self) -> String {
        let (_, digest) = render(self);
        digest.trim_start_matches("sha256:")[..16].to_string()
    }

    /// Returns the step at `address`.
    pub fn step(&self, address: &Address) -> Option<&Step> {
        self.steps.iter().find(|s| &s.address == address)
    }
}

/// An error that makes a plan file unusable.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("failed to read plan file `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to write plan file `{path}`: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("`{path}` is not a linkplan plan file: {reason}")]
    NotAPlan { path: String, reason: String },
    #[error(
        "plan file `{path}` has format version {found}, but this linkplan reads version {supported}"
    )]
    UnknownVersion {
        path: String,
        found: i64,
        supported: u32,
    },
    #[error("plan file `{path}` was changed after it was written: its digest does not match")]
    Edited { path: String },
    #[error(
        "plan file `{path}` has Windows line endings (CRLF), so its digest cannot match the one linkplan wrote"
    )]
    LineEndings { path: String },
}

impl PlanFileError {
    /// Returns what the user should do about the error.
    pub fn help(&self) -> &'static str {
        match self {
            PlanFileError::Read { .. } => "check the path; plans are written by `linkplan plan`",
            PlanFileError::Write { .. } => {
                "check that the folder exists and is writable, or pass --out"
            }
            PlanFileError::NotAPlan { .. } => "pass a file written by `linkplan plan`",
            PlanFileError::UnknownVersion { .. } => {
                "run the linkplan version that wrote the plan, or plan again with this one"
            }
            PlanFileError::Edited { .. } => {
                "plan files must not be edited: run `linkplan plan` again and review the new file"
            }
            PlanFileError::LineEndings { .. } => {
                "check the file out with LF line endings, for example with `*.plan -text` in .gitattributes"
            }
        }
    }
}

/// Returns the file text of `plan` and the digest it ends with.
pub fn render(plan: &Plan) -> (String, String) {
    let body = toml::to_string(plan).expect("a plan serializes to TOML");
    let header = format!(
        "# linkplan plan for stack `{}`. Review it, commit it, then apply it with\n\
         #   linkplan apply <this file>\n\
         # Do not edit: the digest at the end covers every line above it.\n\n",
        plan.stack_name
    );
    let text = format!("{header}{body}");
    let digest = format!("sha256:{}", hex(&Sha256::digest(text.as_bytes())));
    (text, digest)
}

/// Writes `plan` to `path`, creating the parent folder, through a temporary file so that a
/// failed write never leaves half a plan.
///
/// # Errors
/// The folder or the file cannot be written.
pub fn write(path: &Path, plan: &Plan) -> Result<(), PlanFileError> {
    let (text, digest) = render(plan);
    let contents = format!("{text}{INTEGRITY_HEADER}digest = \"{digest}\"\n");
    let error = |source| PlanFileError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let temporary = path.with_extension("plan.tmp");
    std::fs::write(&temporary, contents).map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

/// Reads the plan at `path`, checking its format version, then its digest.
///
/// # Errors
/// An unreadable file, a file that is not a plan, an unknown format version or an edited file.
pub fn read(path: &Path) -> Result<Plan, PlanFileError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
        path: display.clone(),
        source,
    })?;
    parse(&display, &text)
}

/// Parses plan file `text`, reporting errors against `path`.
///
/// # Errors
/// As [`read`].
pub fn parse(path: &str, text: &str) -> Result<Plan, PlanFileError> {
    let not_a_plan = |reason: String| PlanFileError::NotAPlan {
        path: path.to_string(),
        reason,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| not_a_plan(e.message().to_string()))?;
    let version = match table.get("format_version") {
        Some(toml::Value::Integer(version)) => *version,
        Some(other) => {
            return Err(not_a_plan(format!(
                "its `format_version` has the wrong type: expected an integer, found {} {other}",
                other.type_str()
            )));
        }
        None => return Err(not_a_plan("it has no `format_version`".to_string())),
    };
    if version != i64::from(FORMAT_VERSION) {
        return Err(PlanFileError::UnknownVersion {
            path: path.to_string(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }

    let Some(split) = text.rfind(INTEGRITY_HEADER) else {
        if text.contains("\r\n[integrity]\r\n") {
            return Err(PlanFileError::LineEndings {
                path: path.to_string(),
            });
        }
        return Err(not_a_plan("it has no [integrity] table".to_string()));
    };
    let recorded = table
        .get("integrity")
        .and_then(|t| t.get("digest"))
        .and_then(toml::Value::as_str)
        .ok_or_else(|| not_a_plan("[integrity] has no `digest`".to_string()))?;
    let body = &text[..split];
    let actual = format!("sha256:{}", hex(&Sha256::digest(body.as_bytes())));
    // Anything after the digest line would be read as part of the plan without being covered
    // by the digest, such as an extra `[[step]]`.
    let trailer = format!("{INTEGRITY_HEADER}digest = \"{recorded}\"\n");
    if actual != recorded || text[split..] != trailer {
        return Err(PlanFileError::Edited {
            path: path.to_string(),
        });
    }

    let mut table = table;
    table.remove("integrity");
    let plan: Plan = table
        .try_into()
        .map_err(|e: toml::de::Error| not_a_plan(e.message().to_string()))?;
    // The digest proves no origin, so a file can be made by hand. The stack name becomes a
    // folder of the local backend and a key segment of the S3 one, where `../x` would reach
    // files or keys outside the stack's own.
    for name in [&plan.stack_name, &plan.stack.name] {
        if !crate::config::is_stack_name(name) {
            return Err(not_a_plan(format!("its stack name `{name}` is invalid")));
        }
    }
    Ok(plan)
}
