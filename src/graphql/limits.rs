//! What one document may cost, bounded before async-graphql parses or
//! validates it (design: `docs/design/hostile-input.md`).
//!
//! Two checks, both linear in the document's text:
//! - [`scan`] runs on the raw text, before the parser: the text's size and
//!   how deeply brackets nest. async-graphql's parser recurses once per
//!   level of a list or object value, so 2,000 levels of `[` overflow a
//!   runtime thread's stack and abort the process; nothing parses until
//!   the nesting is known to be small.
//! - [`measure`] runs on the parsed document, before validation: fields,
//!   aliases, directives and arguments **after every fragment spread is
//!   expanded** (memoised per fragment, so `...L1 ...L1` on 25 levels is
//!   counted in 25 steps, not 2^25), cycles between fragments, and counts
//!   of fragments and variables. async-graphql's own pre-validation walk
//!   and its validation rules expand spreads without memo, so they only
//!   ever see documents whose expansion is known to be small.
//!
//! Depth and complexity are async-graphql's own limits, set in
//! `build_schema`.

use std::collections::HashMap;

use async_graphql::Name;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Longest document text accepted, in bytes (the largest document a
/// client of this service sends, GraphiQL's introspection, is about 3 KiB).
pub const QUERY_BYTES_MAX: usize = 64 * 1024;
/// Deepest nesting of `{`, `[` and `(` accepted in a document's text
/// (selection sets are limited further, to `QUERY_DEPTH_MAX`).
pub const QUERY_NESTING_MAX: usize = 40;
/// Most fields in one document, fragments expanded.
pub const QUERY_FIELDS_MAX: usize = 500;
/// Most aliased fields in one document, fragments expanded.
pub const QUERY_ALIASES_MAX: usize = 30;
/// Most directives in one document, fragments expanded.
pub const QUERY_DIRECTIVES_MAX: usize = 50;
/// Most arguments (of fields and directives) in one document, fragments
/// expanded.
pub const QUERY_ARGUMENTS_MAX: usize = 200;
/// Most fragment definitions in one document.
pub const QUERY_FRAGMENTS_MAX: usize = 100;
/// Most variable definitions in one document, all operations together.
pub const QUERY_VARIABLES_MAX: usize = 50;
/// Most errors returned in one answer; the rest are summarised in one more.
pub const QUERY_ERRORS_MAX: usize = 20;

/// Checks a document's text before it is parsed: its size, and how deeply
/// `{`, `[` and `(` nest outside strings and comments.
pub fn scan(text: &str) -> Result<(), String> {
    if text.len() > QUERY_BYTES_MAX {
        return Err(format!(
            "the query has {} bytes; at most {QUERY_BYTES_MAX} are accepted",
            text.len()
        ));
    }
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' && bytes[at] != b'\r' {
                    at += 1;
                }
            }
            b'"' if bytes[at..].starts_with(b"\"\"\"") => {
                at += 3;
                while at < bytes.len() && !bytes[at..].starts_with(b"\"\"\"") {
                    // `\"""` is the one escape of a block string.
                    at += if bytes[at..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                at += 2;
            }
            b'"' => {
                at += 1;
                while at < bytes.len() && !matches!(bytes[at], b'"' | b'\n' | b'\r') {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > QUERY_NESTING_MAX {
                    return Err(format!(
                        "the query nests brackets more than {QUERY_NESTING_MAX} levels deep"
                    ));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// What a selection set costs; sums saturate, so an expansion too large
/// to count is still refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Cost {
    fields: usize,
    aliases: usize,
    directives: usize,
    arguments: usize,
}

impl Cost {
    fn add(&mut self, other: Cost, times: usize) {
        self.fields = self.fields.saturating_add(other.fields.saturating_mul(times));
        self.aliases = self.aliases.saturating_add(other.aliases.saturating_mul(times));
        self.directives = self
            .directives
            .saturating_add(other.directives.saturating_mul(times));
        self.arguments = self
            .arguments
            .saturating_add(other.arguments.saturating_mul(times));
    }

    fn max(self, other: Cost) -> Cost {
        Cost {
            fields: self.fields.max(other.fields),
            aliases: self.aliases.max(other.aliases),
            directives: self.directives.max(other.directives),
            arguments: self.arguments.max(other.arguments),
        }
    }
}

/// A fragment's state during the expansion.
enum Expansion {
    /// Being expanded: meeting it again is a cycle.
    Open,
    Done(Cost),
}

struct Measure<'a> {
    document: &'a ExecutableDocument,
    fragments: HashMap<&'a str, Expansion>,
    introspection: bool,
}

impl<'a> Measure<'a> {
    /// The cost of `set`, with spreads expanded when `expand` is set (and
    /// counted as nothing otherwise). The recursion is bounded by the
    /// text's nesting (selection sets) and by `QUERY_FRAGMENTS_MAX`
    /// (spreads).
    fn selection_set(&mut self, set: &'a SelectionSet, expand: bool) -> Result<Cost, String> {
        let mut cost = Cost::default();
        for selection in &set.items {
            let directives = selection.node.directives();
            cost.directives = cost.directives.saturating_add(directives.len());
            for directive in directives {
                cost.arguments = cost.arguments.saturating_add(directive.node.arguments.len());
            }
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    cost.fields = cost.fields.saturating_add(1);
                    cost.aliases = cost.aliases.saturating_add(usize::from(field.alias.is_some()));
                    cost.arguments = cost.arguments.saturating_add(field.arguments.len());
                    if matches!(field.name.node.as_str(), "__schema" | "__type") {
                        self.introspection = true;
                    }
                    cost.add(self.selection_set(&field.selection_set.node, expand)?, 1);
                }
                Selection::InlineFragment(fragment) => {
                    cost.add(self.selection_set(&fragment.node.selection_set.node, expand)?, 1);
                }
                Selection::FragmentSpread(spread) if expand => {
                    cost.add(self.fragment(&spread.node.fragment_name.node)?, 1);
                }
                Selection::FragmentSpread(_) => {}
            }
        }
        Ok(cost)
    }

    /// A fragment's expanded cost, memoised; an unknown fragment costs
    /// nothing here (validation names it).
    fn fragment(&mut self, name: &'a Name) -> Result<Cost, String> {
        match self.fragments.get(name.as_str()) {
            Some(Expansion::Done(cost)) => return Ok(*cost),
            Some(Expansion::Open) => {
                return Err(format!(
                    "fragment {} spreads itself, directly or through other fragments",
                    name
                ));
            }
            None => {}
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(Cost::default());
        };
        self.fragments.insert(name.as_str(), Expansion::Open);
        let cost = self.selection_set(&fragment.node.selection_set.node, true)?;
        self.fragments.insert(name.as_str(), Expansion::Done(cost));
        Ok(cost)
    }
}

fn over(what: &str, count: usize, max: usize) -> Result<(), String> {
    if count > max {
        return Err(format!(
            "the query has {count} {what}; at most {max} are accepted"
        ));
    }
    Ok(())
}

/// Checks a parsed document's size before it is validated or executed.
/// Without `introspection`, a document that asks for `__schema` or
/// `__type` is refused with a clear error (async-graphql alone would
/// answer `null`).
pub fn measure(document: &ExecutableDocument, introspection: bool) -> Result<(), String> {
    over("fragments", document.fragments.len(), QUERY_FRAGMENTS_MAX)?;
    let variables = document
        .operations
        .iter()
        .map(|(_, operation)| operation.node.variable_definitions.len())
        .fold(0usize, usize::saturating_add);
    over("variable definitions", variables, QUERY_VARIABLES_MAX)?;

    let mut measure = Measure {
        document,
        fragments: HashMap::new(),
        introspection: false,
    };
    // As written (every fragment once, used or not: validation visits
    // each), and as executed (every operation with its spreads expanded).
    let mut written = Cost::default();
    let mut expanded = Cost::default();
    for (_, operation) in document.operations.iter() {
        let operation = &operation.node;
        let mut directives = Cost {
            directives: operation.directives.len(),
            ..Cost::default()
        };
        for directive in &operation.directives {
            directives.arguments = directives
                .arguments
                .saturating_add(directive.node.arguments.len());
        }
        written.add(directives, 1);
        expanded.add(directives, 1);
        written.add(measure.selection_set(&operation.selection_set.node, false)?, 1);
        expanded.add(measure.selection_set(&operation.selection_set.node, true)?, 1);
    }
    for (name, fragment) in &document.fragments {
        written.add(
            measure.selection_set(&fragment.node.selection_set.node, false)?,
            1,
        );
        // Cycles among unused fragments are refused too.
        measure.fragment(name)?;
    }
    if measure.introspection && !introspection {
        return Err(
            "introspection is switched off on this server (GRAPHQL_INTROSPECTION=off); the schema is published as schema.graphql"
                .to_owned(),
        );
    }
    let cost = written.max(expanded);
    over("aliases", cost.aliases, QUERY_ALIASES_MAX)?;
    over("fields", cost.fields, QUERY_FIELDS_MAX)?;
    over("directives", cost.directives, QUERY_DIRECTIVES_MAX)?;
    over("arguments", cost.arguments, QUERY_ARGUMENTS_MAX)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn measured(text: &str) -> Result<(), String> {
        scan(text)?;
        let document = parse_query(text).map_err(|error| error.to_string())?;
        measure(&document, true)
    }

    /// `{ ...L0 } fragment L0 { ...L1 ...L1 } … fragment L{n} { __typename }`
    fn doubling(levels: usize) -> String {
        let mut text = String::from("{ ...L0 }");
        for level in 0..levels {
            text += &format!(
                " fragment L{level} on QueryRoot {{ ...L{next} ...L{next} }}",
                next = level + 1
            );
        }
        text + &format!(" fragment L{levels} on QueryRoot {{ __typename }}")
    }

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        let deep = |n: usize| format!("{{ plans(x: {}1{}) {{ code }} }}", "[".repeat(n), "]".repeat(n));
        // Two levels are the braces and the parenthesis.
        assert_eq!(scan(&deep(QUERY_NESTING_MAX - 2)), Ok(()));
        assert!(scan(&deep(QUERY_NESTING_MAX - 1)).is_err());
        assert_eq!(
            scan(&deep(100_000)),
            Err(format!(
                "the query has 200024 bytes; at most {QUERY_BYTES_MAX} are accepted"
            ))
        );
        assert_eq!(
            scan(&deep(2_000)),
            Err(format!(
                "the query nests brackets more than {QUERY_NESTING_MAX} levels deep"
            ))
        );
        let quoted = format!(
            "{{ a(s: \"{0}\\\"{0}\", b: \"\"\"{0}\\\"\"\"{0}\"\"\") # {0}\n }}",
            "[".repeat(1_000)
        );
        assert_eq!(scan(&quoted), Ok(()));
        // Closing brackets never make room for more than the limit.
        let unbalanced = format!("{}{}", "]".repeat(100), "[".repeat(QUERY_NESTING_MAX + 1));
        assert!(scan(&unbalanced).is_err());
    }

    #[test]
    fn fragments_are_counted_as_expanded() {
        // 2^8 = 256 fields once expanded: accepted; 2^9 = 512: refused.
        assert_eq!(measured(&doubling(8)), Ok(()));
        assert_eq!(
            measured(&doubling(9)),
            Err(format!(
                "the query has 512 fields; at most {QUERY_FIELDS_MAX} are accepted"
            ))
        );
        // 2^60 does not overflow the count, and is refused at once.
        assert_eq!(
            measured(&doubling(60)),
            Err(format!(
                "the query has {} fields; at most {QUERY_FIELDS_MAX} are accepted",
                1usize << 60
            ))
        );
        assert_eq!(
            measured("{ ...A } fragment A on QueryRoot { ...B } fragment B on QueryRoot { ...A }"),
            Err("fragment A spreads itself, directly or through other fragments".to_owned())
        );
        assert_eq!(
            measured("{ __typename } fragment U on QueryRoot { ...U }"),
            Err("fragment U spreads itself, directly or through other fragments".to_owned())
        );
    }

    #[test]
    fn directives_arguments_fragments_and_variables_are_bounded() {
        let directives = format!("{{ __typename {} }}", "@skip(if: false) ".repeat(51));
        assert_eq!(
            measured(&directives),
            Err(format!(
                "the query has 51 directives; at most {QUERY_DIRECTIVES_MAX} are accepted"
            ))
        );
        let arguments: String = (0..201).map(|i| format!("a{i}: 1 ")).collect();
        assert_eq!(
            measured(&format!("{{ plans({arguments}) {{ code }} }}")),
            Err(format!(
                "the query has 201 arguments; at most {QUERY_ARGUMENTS_MAX} are accepted"
            ))
        );
        let fragments: String = (0..101)
            .map(|i| format!(" fragment F{i} on QueryRoot {{ __typename }}"))
            .collect();
        assert_eq!(
            measured(&format!("{{ __typename }}{fragments}")),
            Err(format!(
                "the query has 101 fragments; at most {QUERY_FRAGMENTS_MAX} are accepted"
            ))
        );
        let variables: String = (0..51).map(|i| format!("$v{i}: Int ")).collect();
        assert_eq!(
            measured(&format!("query({variables}) {{ __typename }}")),
            Err(format!(
                "the query has 51 variable definitions; at most {QUERY_VARIABLES_MAX} are accepted"
            ))
        );
    }

    #[test]
    fn introspection_is_refused_when_switched_off() {
        let document =
            parse_query("{ ...F } fragment F on QueryRoot { __type(name: \"X\") { name } }").expect("parses");
        assert!(measure(&document, false).is_err());
        assert_eq!(measure(&document, true), Ok(()));
    }
}
