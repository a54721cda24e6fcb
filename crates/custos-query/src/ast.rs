//! The parsed form of a query.
//!
//! The tree is deliberately small: the search back-end (and the audit-data
//! access-rule matcher) only need boolean structure plus per-field value
//! predicates, so everything the surface syntax offers is normalised into
//! these few shapes (`-x`/`!x`/`NOT x` are all [`Query::Not`], comparisons
//! are [`Value::Range`], `field:(a OR b)` is expanded to an [`Query::Or`] of
//! ordinary terms).

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// `*` on its own: match every session.
    All,
    /// A single predicate. `field: None` means "search the default fields /
    /// session content", as for `rm` or `"sudo su"` without a field prefix.
    Term {
        /// Field name (e.g. `psm.connection_policy`), if one was given.
        field: Option<String>,
        /// What the field (or the content) must match.
        value: Value,
    },
    /// All sub-queries must match. Never nested directly inside another
    /// `And` and never has fewer than two elements when produced by the parser.
    And(Vec<Query>),
    /// At least one sub-query must match. Never nested directly inside
    /// another `Or` and never has fewer than two elements when produced by
    /// the parser.
    Or(Vec<Query>),
    /// The sub-query must not match.
    Not(Box<Query>),
}

/// The value side of a [`Query::Term`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A plain word without wildcards, with backslash escapes removed.
    Exact(String),
    /// A quoted phrase, with `\"` and `\\` escapes removed.
    Phrase(String),
    /// A word containing at least one unescaped `*` or `?`.
    ///
    /// The pattern keeps the source's own escapes for the three characters
    /// that are meaningful in a pattern (`\*`, `\?`, `\\`) so that a matcher
    /// can tell a literal star from a wildcard; every other escape is
    /// removed (`a\:b*` becomes `a:b*`).
    Wildcard(String),
    /// A range or comparison; comparisons map to half-open ranges
    /// (`>=5` is `Inclusive("5")..Unbounded`).
    Range {
        /// Lower end.
        lower: Bound,
        /// Upper end.
        upper: Bound,
    },
    /// `field:*`: the field exists / has any value.
    Any,
}

/// One end of a [`Value::Range`].
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// `*`, or the missing side of a comparison.
    Unbounded,
    /// The end value itself is included (`[`, `]`, `>=`, `<=`).
    Inclusive(String),
    /// The end value itself is excluded (`{`, `}`, `>`, `<`).
    Exclusive(String),
}

impl Query {
    /// Every field name used anywhere in the query, deduplicated, in the
    /// order of first appearance.
    ///
    /// Callers use this to check a query against the set of searchable
    /// fields (and to audit which fields an access rule touches) without
    /// walking the tree themselves.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Query::All => {}
            Query::Term { field, .. } => {
                if let Some(name) = field.as_deref()
                    && !out.contains(&name)
                {
                    out.push(name);
                }
            }
            Query::And(items) | Query::Or(items) => {
                for item in items {
                    item.collect_fields(out);
                }
            }
            Query::Not(inner) => inner.collect_fields(out),
        }
    }
}
