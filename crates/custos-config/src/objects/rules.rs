//! Small field rules shared by several object types.

use crate::problem::Problems;

/// Names shown in the UI and used in references by name: non-empty, no whitespace, at most 128.
pub fn name(problems: &mut Problems<'_>, field: &str, value: &str) {
    if value.is_empty() {
        problems.add(field, "must not be empty");
    } else if value.chars().any(char::is_whitespace) {
        problems.add(field, "must not contain whitespace");
    } else if value.chars().any(char::is_control) {
        problems.add(field, "must not contain control characters");
    } else if value.chars().count() > 128 {
        problems.add(field, "must be at most 128 characters long");
    }
}

/// A host name (RFC 1123 labels) or an IP address.
pub fn host(problems: &mut Problems<'_>, field: &str, value: &str) {
    if value.parse::<std::net::IpAddr>().is_ok() {
        return;
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if value.is_empty() || value.len() > 253 || !value.split('.').all(valid_label) {
        problems.add(
            field,
            format!("{value:?} is neither an IP address nor a host name"),
        );
    }
}

/// Reports duplicates in a list, naming the second occurrence.
pub fn no_duplicates<T: PartialEq>(problems: &mut Problems<'_>, field: &str, items: &[T]) {
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            problems.add(format!("{field}[{i}]"), "appears more than once");
        }
    }
}
