//! Problems found while validating configuration, each tied to the path it concerns.

use serde::Serialize;

/// One violated rule. `path` is the object's REST path; `field` the place inside its body
/// (dotted, with `[i]` for list items), empty when the problem concerns the whole object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: String,
    pub field: String,
    pub message: String,
}

/// Collects problems for one object while its schema validates it.
#[derive(Debug)]
pub struct Problems<'a> {
    path: &'a str,
    found: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub fn new(path: &'a str) -> Self {
        Problems {
            path,
            found: Vec::new(),
        }
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.found.push(Problem {
            path: self.path.to_string(),
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.found
    }
}
