//! Steps: what a plan does to one object, and the action vocabulary every view draws the same way.

use serde::{Deserialize, Serialize};

use crate::resource::{Address, Resource};
use crate::stack::Context;

/// The change a step makes to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    /// Delete and create again, for attributes AWS cannot change in place.
    Replace,
    Delete,
    /// Take over an object made outside linkplan by tagging it as the stack's.
    Adopt,
}

impl Action {
    /// Returns the one- or three-character marker drawn before the address.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Adopt => "=",
        }
    }

    /// Returns the verb for a summary line, such as "created".
    pub fn past_tense(self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Replace => "replaced",
            Action::Delete => "destroyed",
            Action::Adopt => "adopted",
        }
    }

    /// Returns the phrase for a plan line, such as "will be created".
    pub fn future_tense(self) -> &'static str {
        match self {
            Action::Create => "will be created",
            Action::Update => "will be updated in place",
            Action::Replace => "must be replaced",
            Action::Delete => "will be destroyed",
            Action::Adopt => "will be adopted",
        }
    }

    /// Returns the word for the summary counts, such as "to add".
    pub fn count_label(self) -> &'static str {
        match self {
            Action::Create => "to add",
            Action::Update => "to change",
            Action::Replace => "to replace",
            Action::Delete => "to destroy",
            Action::Adopt => "to adopt",
        }
    }

    pub const ALL: [Action; 5] = [
        Action::Create,
        Action::Adopt,
        Action::Update,
        Action::Replace,
        Action::Delete,
    ];
}

/// One change of a plan: an action on one object, with its attributes before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub address: Address,
    pub action: Action,
    /// The AWS id of the existing object the step changes, deletes or adopts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The reason for the step when the diff alone does not show it, such as drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Steps that must finish first, sorted.
    #[serde(default)]
    pub depends_on: Vec<Address>,
    /// The region and credentials the step's calls are made with.
    ///
    /// It comes after every plain value because toml 1.2.2 writes an array of tables in time
    /// quadratic in its length when a value follows a nested table in each element.
    pub context: Context,
    /// The object as read when planned; `None` for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Resource>,
    /// The object as it will be; `None` for a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Resource>,
}

impl Step {
    /// Returns the attributes the step works with: `after`, or `before` for a delete.
    pub fn resource(&self) -> &Resource {
        self.after
            .as_ref()
            .or(self.before.as_ref())
            .expect("a step has a before or an after state")
    }
}

/// An object changed outside linkplan since the stack was applied, found while planning.
///
/// Drift is reported apart from the steps, so a reviewer can tell what someone changed by hand
/// and what the plan does about it: the step that puts it back, or nothing, for objects the
/// stack does not manage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Drift {
    /// The object as AWS names it, such as `record relay.deepsecurity.trendmicro.com`.
    pub object: String,
    /// The state found, compared with the state linkplan expects.
    pub found: String,
    /// The step of this plan that restores the object; absent when it is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_by: Option<Address>,
    /// The reason the object is left alone, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_alone: Option<String>,
}
