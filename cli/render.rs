//! Views of a plan: text for people (colored on a terminal), JSON for policy tools.
//!
//! The views only format what the engine computed. Attributes are compared as TOML values,
//! so every resource kind is drawn the same way: `+` added, `-` removed, `~` changed, and
//! values known only after apply shown as `(known after apply)`.

use std::fmt::Write;

use console::Style;
use linkplan_engine::plan_file::{Plan, Summary};
use linkplan_engine::step::{Action, Step};

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

/// Renders the whole plan as text: the legend, each step, then the summary line.
pub fn plan_text(plan: &Plan, palette: &Palette) -> String {
    let mut out = String::new();
    if plan.steps.is_empty() {
        let _ = writeln!(
            out,
            "{} The live state matches the config of stack `{}`; there is nothing to apply.",
            palette.bold.apply_to("No changes."),
            plan.stack_name
        );
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
        "stack": plan.stack_name,
        "mode": plan.mode,
        "endpoint_url": plan.endpoint_url,
        "accounts": plan.accounts,
        "summary": plan.summary,
        "unchanged": plan.unchanged,
        "warnings": plan.warnings,
        "steps": steps,
    });
    let mut text = serde_json::to_string_pretty(&document).expect("a plan serializes to JSON");
    text.push('\n');
    text
}
