//! Recursive-descent parser over the context-sensitive [`Lexer`].
//!
//! Precedence, loosest first: `OR`, `AND` (explicit or implicit by
//! juxtaposition), prefix `NOT`/`-`/`!`/`+`, then primaries. Recursion only
//! happens through parentheses and negations, and both count against
//! [`MAX_DEPTH`], so hostile input such as `((((…` or `------…` is rejected
//! before it can exhaust the stack (and before it can build a tree whose
//! recursive `Drop` could).

use crate::ast::{Query, Value};
use crate::error::ParseError;
use crate::lexer::{FieldValue, Lexer, TokenKind, ValueToken, Word};

/// Maximum nesting of parentheses plus negations.
pub const MAX_DEPTH: usize = 64;

/// What came before the operand being parsed; only used to pick the right
/// error message (and position) when the operand is missing.
#[derive(Debug, Clone, Copy)]
enum Context {
    /// The very start of the query.
    Start,
    /// Directly after another operand (implicit AND).
    Juxtaposed,
    /// After an operator spanning `start..end`.
    Operator {
        start: usize,
        end: usize,
        binary: bool,
    },
    /// Directly after the `(` at `open`.
    Group { open: usize },
}

pub(crate) fn parse_query(input: &str) -> Result<Query, ParseError> {
    let mut parser = Parser {
        lexer: Lexer::new(input),
        depth: 0,
        group_field: None,
    };
    let query = parser.parse_or(Context::Start)?;
    let token = parser.lexer.peek()?;
    match token.kind {
        TokenKind::Eof => Ok(query),
        TokenKind::RParen => Err(ParseError::new(
            token.start,
            "unmatched closing parenthesis",
        )),
        _ => Err(ParseError::new(token.start, "unexpected input")),
    }
}

struct Parser {
    lexer: Lexer,
    /// Current nesting of parentheses and negations.
    depth: usize,
    /// Inside `field:( … )`, the field every bare value applies to.
    group_field: Option<String>,
}

impl Parser {
    fn parse_or(&mut self, context: Context) -> Result<Query, ParseError> {
        let mut items = Vec::new();
        push_flattened(&mut items, self.parse_and(context)?, false);
        loop {
            let token = self.lexer.peek()?;
            if token.kind != TokenKind::Or {
                break;
            }
            self.lexer.set_pos(token.end);
            let operand = self.parse_and(Context::Operator {
                start: token.start,
                end: token.end,
                binary: true,
            })?;
            push_flattened(&mut items, operand, false);
        }
        Ok(combine(items, Query::Or))
    }

    fn parse_and(&mut self, context: Context) -> Result<Query, ParseError> {
        let mut items = Vec::new();
        push_flattened(&mut items, self.parse_unary(context)?, true);
        loop {
            let token = self.lexer.peek()?;
            let operand = match token.kind {
                TokenKind::Eof | TokenKind::RParen | TokenKind::Or => break,
                TokenKind::And => {
                    self.lexer.set_pos(token.end);
                    self.parse_unary(Context::Operator {
                        start: token.start,
                        end: token.end,
                        binary: true,
                    })?
                }
                _ => self.parse_unary(Context::Juxtaposed)?,
            };
            push_flattened(&mut items, operand, true);
        }
        Ok(combine(items, Query::And))
    }

    /// Prefix operators are consumed in a loop rather than by recursion so
    /// that a long run of `+` cannot overflow the stack; each negation still
    /// counts one level of depth because it nests the resulting tree.
    fn parse_unary(&mut self, mut context: Context) -> Result<Query, ParseError> {
        let saved_depth = self.depth;
        let mut negations = 0usize;
        loop {
            let token = self.lexer.peek()?;
            match token.kind {
                TokenKind::Not => {
                    self.enter(token.start)?;
                    negations += 1;
                }
                TokenKind::Plus => {}
                _ => break,
            }
            self.lexer.set_pos(token.end);
            context = Context::Operator {
                start: token.start,
                end: token.end,
                binary: false,
            };
        }
        let mut query = self.parse_primary(context)?;
        self.depth = saved_depth;
        for _ in 0..negations {
            query = Query::Not(Box::new(query));
        }
        Ok(query)
    }

    fn parse_primary(&mut self, context: Context) -> Result<Query, ParseError> {
        let token = self.lexer.peek()?;
        match token.kind {
            TokenKind::Eof => Err(self.missing_operand(context, token.start, false)),
            TokenKind::RParen => Err(self.missing_operand(context, token.start, true)),
            TokenKind::And | TokenKind::Or => Err(ParseError::new(
                token.start,
                format!(
                    "dangling operator '{}': missing left operand",
                    self.lexer.text(token.start, token.end)
                ),
            )),
            // parse_unary consumes every prefix operator before calling us.
            TokenKind::Not | TokenKind::Plus => {
                Err(ParseError::new(token.start, "unexpected operator"))
            }
            TokenKind::LParen => {
                self.lexer.set_pos(token.end);
                self.parse_group(token.start)
            }
            TokenKind::Field(name) => {
                let colon = token.end - 1;
                if let Some(outer) = &self.group_field {
                    return Err(ParseError::new(
                        colon,
                        format!("nested field: '{name}:' inside the value of field '{outer}'"),
                    ));
                }
                self.lexer.set_pos(token.end);
                self.parse_field_value(name)
            }
            TokenKind::Value(value) => {
                self.lexer.set_pos(token.end);
                let field = self.group_field.clone();
                self.reject_colon_after_value(field.as_deref())?;
                Ok(make_term(field, value))
            }
        }
    }

    /// After `field:`: either a single value or a parenthesised group whose
    /// bare values all get `field`.
    fn parse_field_value(&mut self, field: String) -> Result<Query, ParseError> {
        let open = self.lexer.pos();
        let (value, end) = self.lexer.field_value(&field)?;
        self.lexer.set_pos(end);
        match value {
            FieldValue::Group => {
                let outer = self.group_field.replace(field);
                let result = self.parse_group(open);
                self.group_field = outer;
                result
            }
            FieldValue::Value(value) => {
                self.reject_colon_after_value(Some(&field))?;
                Ok(make_term(Some(field), value))
            }
        }
    }

    /// Parses the inside of a group whose `(` at `open` was just consumed.
    fn parse_group(&mut self, open: usize) -> Result<Query, ParseError> {
        self.enter(open)?;
        let query = self.parse_or(Context::Group { open })?;
        let token = self.lexer.peek()?;
        match token.kind {
            TokenKind::RParen => self.lexer.set_pos(token.end),
            TokenKind::Eof => return Err(ParseError::new(open, "unclosed parenthesis")),
            _ => return Err(ParseError::new(token.start, "unexpected input")),
        }
        self.depth -= 1;
        Ok(query)
    }

    fn enter(&mut self, position: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(position, "query nested too deeply"));
        }
        Ok(())
    }

    /// A value directly followed by `:` is either `a:b:c` or a phrase or
    /// range used as if it were a field name; both are mistakes worth a
    /// specific message rather than a confusing one later.
    fn reject_colon_after_value(&self, field: Option<&str>) -> Result<(), ParseError> {
        if self.lexer.current_char() != Some(':') {
            return Ok(());
        }
        let position = self.lexer.pos();
        Err(match field {
            Some(field) => ParseError::new(
                position,
                format!("nested field: unexpected ':' after the value of field '{field}'"),
            ),
            None => ParseError::new(
                position,
                "unexpected ':' (a field name must be a plain word)",
            ),
        })
    }

    fn missing_operand(&self, context: Context, position: usize, at_rparen: bool) -> ParseError {
        match context {
            Context::Operator { start, end, binary } => {
                let side = if binary { "right operand" } else { "operand" };
                ParseError::new(
                    start,
                    format!(
                        "dangling operator '{}': missing {side}",
                        self.lexer.text(start, end)
                    ),
                )
            }
            Context::Group { open } if at_rparen => ParseError::new(open, "empty parentheses"),
            Context::Group { open } => ParseError::new(open, "unclosed parenthesis"),
            Context::Start | Context::Juxtaposed if at_rparen => {
                ParseError::new(position, "unmatched closing parenthesis")
            }
            Context::Start => ParseError::new(position, "empty query"),
            Context::Juxtaposed => ParseError::new(position, "unexpected end of query"),
        }
    }
}

fn make_term(field: Option<String>, value: ValueToken) -> Query {
    let value = match value {
        ValueToken::Word(Word { is_star: true, .. }) if field.is_none() => return Query::All,
        ValueToken::Word(Word { is_star: true, .. }) => Value::Any,
        ValueToken::Word(word) if word.has_wildcard => Value::Wildcard(word.pattern),
        ValueToken::Word(word) => Value::Exact(word.text),
        ValueToken::Phrase(text) => Value::Phrase(text),
        ValueToken::Range { lower, upper } => Value::Range { lower, upper },
    };
    Query::Term { field, value }
}

/// Appends `query`, splicing in its children if it is the same kind of
/// conjunction/disjunction, so `(a AND b) AND c` becomes `And[a, b, c]`.
fn push_flattened(items: &mut Vec<Query>, query: Query, and: bool) {
    match query {
        Query::And(children) if and => items.extend(children),
        Query::Or(children) if !and => items.extend(children),
        other => items.push(other),
    }
}

fn combine(mut items: Vec<Query>, make: fn(Vec<Query>) -> Query) -> Query {
    if items.len() == 1
        && let Some(only) = items.pop()
    {
        return only;
    }
    make(items)
}
