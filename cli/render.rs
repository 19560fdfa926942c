//! Views of a plan: text for people (colored on a terminal), Markdown for a pull-request
//! comment, JSON for policy tools.
//!
//! The views only format what the engine computed. Attributes are compared as TOML values,
//! so every resource kind is drawn the same way: `+` added, `-` removed, `~` changed, and
//! values known only after apply shown as `(known after apply)`.

use std::fmt::Write;

use console::Style;
use linkplan_engine::plan_file::{Plan, Summary};
use linkplan_engine::step::{Action, Drift, Step};

/// Colors of the text view. With color off, every style is plain.
#[derive(Clone)]
pub struct Palette {
    pub create: Style,
    pub update: Style,
    pub delete: Style,
    pub adopt: Style,
    pub dim: Style,
    pub bold: Style,
}

impl Palette {
    pub fn new(color: bool) -> Self {
        let style = |s: Style| s.force_styling(color);
        Palette {
            create: style(Style::new().green()),
            update: style(Style::new().yellow()),
            delete: style(Style::new().red()),
            adopt: style(Style::new().cyan()),
            dim: style(Style::new().dim()),
            bold: style(Style::new().bold()),
        }
    }

    pub fn action(&self, action: Action) -> &Style {
        match action {
            Action::Create => &self.create,
            Action::Update => &self.update,
            Action::Replace | Action::Delete => &self.delete,
            Action::Adopt => &self.adopt,
        }
    }
}

/// Renders the whole plan as text: drift, the legend, each step, then the summary line.
pub fn plan_text(plan: &Plan, palette: &Palette) -> String {
    let mut out = drift_text(plan, palette);
    if plan.steps.is_empty() {
        let sentence = match plan.mode {
            linkplan_engine::planner::Mode::Apply => format!(
                "The live state matches the config of stack `{}`; there is nothing to apply.",
                plan.stack_name
            ),
            linkplan_engine::planner::Mode::Destroy => format!(
                "Nothing of stack `{}` exists; there is nothing to destroy.",
                plan.stack_name
            ),
        };
        let _ = writeln!(out, "{} {sentence}", palette.bold.apply_to("No changes."));
        return out;
    }
    let _ = writeln!(
        out,
        "linkplan will perform these actions on stack `{}`, in this order:",
        plan.stack_name
    );
    let present: Vec<Action> = Action::ALL
        .into_iter()
        .filter(|a| plan.steps.iter().any(|s| s.action == *a))
        .collect();
    for action in present {
        let _ = writeln!(
            out,
            "  {} {}",
            palette
                .action(action)
                .apply_to(format!("{:>3}", action.symbol())),
            legend(action)
        );
    }
    for step in &plan.steps {
        out.push('\n');
        out.push_str(&step_text(step, palette));
    }
    out.push('\n');
    let _ = writeln!(out, "{}", summary_line(&plan.summary, palette));
    out
}

/// Renders the objects changed outside linkplan, each with what the plan does about it, then a
/// blank line; nothing when there are none.
pub fn drift_text(plan: &Plan, palette: &Palette) -> String {
    let mut out = String::new();
    if plan.drift.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{}",
        palette
            .bold
            .apply_to("Drift: objects changed outside linkplan since the stack was applied")
    );
    for drift in &plan.drift {
        let _ = writeln!(
            out,
            "  {} {}: {}",
            palette.update.apply_to("!"),
            drift.object,
            drift.found
        );
        let _ = writeln!(
            out,
            "      {}",
            palette.dim.apply_to(drift_response(plan, drift))
        );
    }
    out.push('\n');
    out
}

/// Returns what the plan does about `drift`: the step that restores it, or why it is left
/// alone.
fn drift_response(plan: &Plan, drift: &Drift) -> String {
    match (&drift.restored_by, &drift.left_alone) {
        (Some(address), _) => {
            let action = plan
                .step(address)
                .map_or("restored", |s| s.action.future_tense());
            format!("restored: {address} {action}")
        }
        (None, Some(reason)) => format!("left alone: {reason}"),
        (None, None) => "left alone".to_string(),
    }
}

/// Renders the warnings recorded when the plan was made, for views of a plan file; `plan`
/// itself prints them in full as it finds them.
pub fn warnings_text(plan: &Plan, palette: &Palette) -> String {
    let mut out = String::new();
    if plan.warnings.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\n{}", palette.bold.apply_to("Warnings when planned:"));
    for warning in &plan.warnings {
        let _ = writeln!(out, "  {} {warning}", palette.update.apply_to("warning:"));
    }
    out
}

fn legend(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update in place",
        Action::Replace => "destroy and then create",
        Action::Delete => "destroy",
        Action::Adopt => "adopt an existing object",
    }
}

/// Returns `Plan: N to add, N to change, N to destroy.`, with adoptions and unchanged counts.
pub fn summary_line(summary: &Summary, palette: &Palette) -> String {
    let mut line = format!(
        "{} {} to add, {} to change, {} to destroy",
        palette.bold.apply_to("Plan:"),
        summary.add,
        summary.change,
        summary.destroy
    );
    if summary.adopt > 0 {
        let _ = write!(line, ", {} to adopt", summary.adopt);
    }
    line.push('.');
    if summary.unchanged > 0 {
        let _ = write!(
            line,
            " {}",
            palette
                .dim
                .apply_to(format!("({} unchanged)", summary.unchanged))
        );
    }
    line
}

/// Renders one step: a comment naming the action and where it runs, then the attributes.
pub fn step_text(step: &Step, palette: &Palette) -> String {
    let style = palette.action(step.action);
    let mut out = String::new();
    let mut comment = format!("# {} {}", step.address, step.action.future_tense());
    let _ = write!(comment, " (in {}", step.context.region);
    if let Some(profile) = &step.context.credentials.profile {
        let _ = write!(comment, ", profile {profile}");
    }
    if let Some(role) = &step.context.credentials.role_arn {
        let _ = write!(comment, ", role {role}");
    }
    comment.push(')');
    let _ = writeln!(out, "  {}", palette.bold.apply_to(comment));
    if let Some(reason) = &step.reason {
        let _ = writeln!(
            out,
            "  {}",
            palette.dim.apply_to(format!("# because {reason}"))
        );
    }
    let kind = step.resource().kind();
    let id = step
        .id
        .as_deref()
        .map(|id| format!(" [{id}]"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {} {kind} \"{}\"{id} {{",
        style.apply_to(step.action.symbol()),
        step.address
    );

    let before = step.before.as_ref().map(attributes);
    let after = step.after.as_ref().map(attributes);
    let mut lines = Vec::new();
    let hidden = diff_tables(
        before.as_ref(),
        after.as_ref(),
        step.action,
        6,
        palette,
        &mut lines,
    );
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    if hidden > 0 {
        let noun = if hidden == 1 {
            "attribute"
        } else {
            "attributes"
        };
        let _ = writeln!(
            out,
            "{}",
            palette
                .dim
                .apply_to(format!("      # ({hidden} unchanged {noun} hidden)"))
        );
    }
    let _ = writeln!(out, "    }}");
    out
}

/// Returns a resource's attributes as a TOML table, without the `type` tag.
fn attributes(resource: &linkplan_engine::resource::Resource) -> toml::Table {
    let mut table = toml::Table::try_from(resource).expect("resources serialize to TOML tables");
    table.remove("type");
    table
}

/// Appends the diff of two attribute tables to `lines`, indented by `indent`, and returns how
/// many unchanged attributes it left out.
fn diff_tables(
    before: Option<&toml::Table>,
    after: Option<&toml::Table>,
    action: Action,
    indent: usize,
    palette: &Palette,
    lines: &mut Vec<String>,
) -> usize {
    let empty = toml::Table::new();
    let (old, new) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    let pad = " ".repeat(indent);
    let mut hidden = 0;
    for key in keys {
        let label = format!("{key:<width$}");
        match (old.get(key), new.get(key)) {
            (None, Some(value)) => push_value(lines, &pad, "+", &palette.create, &label, value),
            (Some(value), None) => push_value(lines, &pad, "-", &palette.delete, &label, value),
            (Some(a), Some(b)) if a == b => {
                // Creates and deletes show everything; changes show what changes.
                if matches!(action, Action::Create | Action::Delete) {
                    push_value(lines, &pad, " ", &palette.dim, &label, b);
                } else {
                    hidden += 1;
                }
            }
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b)))
                if !is_reference(a) && !is_reference(b) =>
            {
                lines.push(format!(
                    "{pad}{} {label} = {{",
                    palette.update.apply_to("~")
                ));
                hidden += diff_tables(Some(a), Some(b), action, indent + 4, palette, lines);
                lines.push(format!("{pad}  }}"));
            }
            (Some(toml::Value::Array(a)), Some(toml::Value::Array(b)))
                if is_named_tables(a) && is_named_tables(b) =>
            {
                lines.push(format!("{pad}{} {label} = [", palette.update.apply_to("~")));
                hidden += diff_named(a, b, action, indent + 4, palette, lines);
                lines.push(format!("{pad}  ]"));
            }
            (Some(a), Some(b)) => lines.push(format!(
                "{pad}{} {label} = {} -> {}",
                palette.update.apply_to("~"),
                inline(a),
                inline(b)
            )),
            (None, None) => {}
        }
    }
    hidden
}

/// Diffs two lists of tables that each have a `name`, matching entries by name.
fn diff_named(
    before: &[toml::Value],
    after: &[toml::Value],
    action: Action,
    indent: usize,
    palette: &Palette,
    lines: &mut Vec<String>,
) -> usize {
    let name = |v: &toml::Value| {
        v.get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut names: Vec<String> = before.iter().chain(after).map(name).collect();
    names.sort();
    names.dedup();
    let pad = " ".repeat(indent);
    let mut hidden = 0;
    for entry in names {
        let old = before
            .iter()
            .find(|v| name(v) == entry)
            .and_then(toml::Value::as_table);
        let new = after
            .iter()
            .find(|v| name(v) == entry)
            .and_then(toml::Value::as_table);
        let (marker, style) = match (old, new) {
            (None, Some(_)) => ("+", &palette.create),
            (Some(_), None) => ("-", &palette.delete),
            (Some(a), Some(b)) if a == b => {
                hidden += 1;
                continue;
            }
            _ => ("~", &palette.update),
        };
        lines.push(format!("{pad}{} {{", style.apply_to(marker)));
        // A changed entry names itself, since its unchanged attributes are hidden.
        if marker == "~" {
            lines.push(format!("{pad}      name = {entry:?}"));
        }
        let inner_action = match marker {
            "+" => Action::Create,
            "-" => Action::Delete,
            _ => action,
        };
        hidden += diff_tables(old, new, inner_action, indent + 4, palette, lines);
        lines.push(format!("{pad}  }},"));
    }
    hidden
}

fn push_value(
    lines: &mut Vec<String>,
    pad: &str,
    marker: &str,
    style: &Style,
    label: &str,
    value: &toml::Value,
) {
    match value {
        toml::Value::Table(table) if !is_reference(table) => {
            lines.push(format!("{pad}{} {label} = {{", style.apply_to(marker)));
            push_table(lines, &format!("{pad}    "), marker, style, table);
            lines.push(format!("{pad}  }}"));
        }
        toml::Value::Array(items) if is_named_tables(items) => {
            lines.push(format!("{pad}{} {label} = [", style.apply_to(marker)));
            for item in items {
                lines.push(format!("{pad}    {} {{", style.apply_to(marker)));
                if let Some(table) = item.as_table() {
                    push_table(lines, &format!("{pad}        "), marker, style, table);
                }
                lines.push(format!("{pad}      }},"));
            }
            lines.push(format!("{pad}  ]"));
        }
        _ => lines.push(format!(
            "{pad}{} {label} = {}",
            style.apply_to(marker),
            inline(value)
        )),
    }
}

/// Appends every entry of `table`, sorted by key with the keys padded to one width.
fn push_table(
    lines: &mut Vec<String>,
    pad: &str,
    marker: &str,
    style: &Style,
    table: &toml::Table,
) {
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    for key in keys {
        push_value(
            lines,
            pad,
            marker,
            style,
            &format!("{key:<width$}"),
            &table[key],
        );
    }
}

/// Reports whether a TOML table is a reference to another step's output.
fn is_reference(table: &toml::Table) -> bool {
    table.len() == 2 && table.contains_key("from") && table.contains_key("output")
}

fn is_named_tables(items: &[toml::Value]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|v| v.as_table().is_some_and(|t| t.contains_key("name")))
}

/// Formats a value on one line.
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Table(table) if is_reference(table) => "(known after apply)".to_string(),
        toml::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", parts.join(", "))
        }
        toml::Value::Table(table) => {
            let parts: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// Renders the plan as JSON: the header fields, then per step its address, action, context,
/// dependencies, and before and after attributes.
pub fn plan_json(plan: &Plan) -> String {
    let steps: Vec<serde_json::Value> = plan
        .steps
        .iter()
        .map(|step| {
            serde_json::json!({
                "address": step.address,
                "action": step.action,
                "kind": step.resource().kind(),
                "region": step.context.region,
                "id": step.id,
                "reason": step.reason,
                "depends_on": step.depends_on,
                "before": step.before,
                "after": step.after,
            })
        })
        .collect();
    let document = serde_json::json!({
        "format_version": plan.format_version,
        "linkplan_version": plan.linkplan_version,
        "plan_id": plan.id(),
        "stack_name": plan.stack_name,
        "mode": plan.mode,
        "config_digest": plan.config_digest,
        "endpoint_url": plan.endpoint_url,
        "accounts": plan.accounts,
        "summary": plan.summary,
        "unchanged": plan.unchanged,
        "warnings": plan.warnings,
        "drift": plan.drift,
        "steps": steps,
    });
    let mut text = serde_json::to_string_pretty(&document).expect("a plan serializes to JSON");
    text.push('\n');
    text
}

/// Renders the plan as Markdown for a pull-request comment: the summary and a table of the
/// steps first, then drift and warnings, then each step's attributes in a collapsed section.
pub fn plan_markdown(plan: &Plan) -> String {
    let plain = Palette::new(false);
    let mut out = String::new();
    let _ = writeln!(out, "### linkplan plan for stack `{}`\n", plan.stack_name);
    let accounts: Vec<String> = plan
        .accounts
        .iter()
        .map(|a| format!("{} ({})", a.account_id, a.context.region))
        .collect();
    let _ = writeln!(
        out,
        "{}  \nPlan id `{}`, {} mode, account {}.\n",
        summary_line(&plan.summary, &plain),
        plan.id(),
        match plan.mode {
            linkplan_engine::planner::Mode::Apply => "apply",
            linkplan_engine::planner::Mode::Destroy => "destroy",
        },
        accounts.join(", ")
    );
    if plan.steps.is_empty() {
        let _ = writeln!(out, "No changes: the live state matches the config.\n");
    } else {
        let _ = writeln!(out, "| | Address | Kind | Action | Region | Id |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for step in &plan.steps {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} | {} | {} | {} |",
                step.action.symbol(),
                step.address,
                step.resource().kind(),
                step.action.future_tense(),
                step.context.region,
                step.id
                    .as_deref()
                    .map(|id| format!("`{id}`"))
                    .unwrap_or_default()
            );
        }
        out.push('\n');
    }
    if !plan.drift.is_empty() {
        let _ = writeln!(out, "#### Drift\n");
        let _ = writeln!(out, "| Object | Found | What the plan does |");
        let _ = writeln!(out, "|---|---|---|");
        for drift in &plan.drift {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                markdown_cell(&drift.object),
                markdown_cell(&drift.found),
                markdown_cell(&drift_response(plan, drift))
            );
        }
        out.push('\n');
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "#### Warnings\n");
        for warning in &plan.warnings {
            let _ = writeln!(out, "- {}", markdown_cell(warning));
        }
        out.push('\n');
    }
    for step in &plan.steps {
        let _ = writeln!(
            out,
            "<details><summary><code>{} {}</code> {}</summary>\n",
            step.action.symbol(),
            step.address,
            step.action.future_tense()
        );
        let _ = writeln!(out, "```diff");
        for line in step_text(step, &plain).lines() {
            let _ = writeln!(out, "{}", diff_line(line));
        }
        let _ = writeln!(out, "```\n\n</details>\n");
    }
    out
}

/// Moves a line's `+` or `-` marker to the first column, where Markdown diff highlighting
/// looks for it, keeping the indentation after it.
fn diff_line(line: &str) -> String {
    let body = line.trim_start();
    let indent = line.len() - body.len();
    match body.chars().next() {
        Some(marker @ ('+' | '-')) if !body.starts_with("-/+") => {
            format!("{marker}{}{}", " ".repeat(indent), &body[1..])
        }
        _ => line.to_string(),
    }
}

/// Escapes the characters that would end a Markdown table cell or start markup.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
