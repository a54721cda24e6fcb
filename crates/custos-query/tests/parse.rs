//! Behavioural tests of the public API: grammar, precedence, errors with
//! positions, limits, Display round-trip and a deterministic fuzz loop.

use custos_query::{Bound, MAX_DEPTH, MAX_QUERY_CHARS, ParseError, Query, Value, parse};

// ---------------------------------------------------------------- helpers

/// Keeps failure messages readable for the multi-kilobyte limit tests.
fn short(input: &str) -> String {
    input.chars().take(80).collect()
}

fn ok(input: &str) -> Query {
    match parse(input) {
        Ok(query) => query,
        Err(err) => panic!("expected {:?} to parse, got: {err}", short(input)),
    }
}

fn err(input: &str) -> ParseError {
    match parse(input) {
        Ok(query) => panic!("expected {:?} to fail, got: {query:?}", short(input)),
        Err(err) => err,
    }
}

/// Asserts both the position and (a fragment of) the message.
fn assert_err(input: &str, position: usize, message: &str) {
    let e = err(input);
    let shown = short(input);
    assert_eq!(e.position, position, "position for {shown:?}: {e}");
    assert!(
        e.message.contains(message),
        "message for {shown:?}: expected it to contain {message:?}, got {:?}",
        e.message
    );
}

fn term(field: &str, value: Value) -> Query {
    Query::Term {
        field: Some(field.to_owned()),
        value,
    }
}

fn bare(value: Value) -> Query {
    Query::Term { field: None, value }
}

fn exact(s: &str) -> Value {
    Value::Exact(s.to_owned())
}

fn phrase(s: &str) -> Value {
    Value::Phrase(s.to_owned())
}

fn wild(s: &str) -> Value {
    Value::Wildcard(s.to_owned())
}

fn w(s: &str) -> Query {
    bare(exact(s))
}

fn fe(field: &str, s: &str) -> Query {
    term(field, exact(s))
}

fn not(q: Query) -> Query {
    Query::Not(Box::new(q))
}

fn inc(s: &str) -> Bound {
    Bound::Inclusive(s.to_owned())
}

fn exc(s: &str) -> Bound {
    Bound::Exclusive(s.to_owned())
}

fn range(lower: Bound, upper: Bound) -> Value {
    Value::Range { lower, upper }
}

// ---------------------------------------------------------------- grammar

#[test]
fn single_field_term_from_access_rules() {
    assert_eq!(
        ok("psm.connection_policy:my_ssh_connection_policy"),
        fe("psm.connection_policy", "my_ssh_connection_policy")
    );
}

#[test]
fn bare_words_search_default_fields() {
    assert_eq!(ok("sudo"), w("sudo"));
    assert_eq!(ok("  sudo  "), w("sudo"));
}

#[test]
fn star_alone_is_all_and_field_star_is_any() {
    assert_eq!(ok("*"), Query::All);
    assert_eq!(ok("(*)"), Query::All);
    assert_eq!(ok("client.ip:*"), term("client.ip", Value::Any));
    assert_eq!(ok("-*"), not(Query::All));
}

#[test]
fn implicit_and_by_juxtaposition() {
    assert_eq!(
        ok("protocol:ssh user:root"),
        Query::And(vec![fe("protocol", "ssh"), fe("user", "root")])
    );
    assert_eq!(ok("a\tb\nc"), Query::And(vec![w("a"), w("b"), w("c")]));
    assert_eq!(ok("a(b)"), Query::And(vec![w("a"), w("b")]));
    assert_eq!(
        ok("a\"b c\""),
        Query::And(vec![w("a"), bare(phrase("b c"))])
    );
}

#[test]
fn explicit_and_or_and_symbol_synonyms() {
    let and = Query::And(vec![w("a"), w("b")]);
    let or = Query::Or(vec![w("a"), w("b")]);
    assert_eq!(ok("a AND b"), and);
    assert_eq!(ok("a && b"), and);
    assert_eq!(ok("a &&b"), and);
    assert_eq!(ok("a OR b"), or);
    assert_eq!(ok("a || b"), or);
    assert_eq!(
        ok("a||b"),
        w("a||b"),
        "operators are only recognised at a token start"
    );
}

#[test]
fn keywords_are_case_insensitive() {
    assert_eq!(ok("a and b"), Query::And(vec![w("a"), w("b")]));
    assert_eq!(ok("a Or b"), Query::Or(vec![w("a"), w("b")]));
    assert_eq!(ok("nOt a"), not(w("a")));
    assert_eq!(ok("x:[1 to 2]"), term("x", range(inc("1"), inc("2"))));
}

#[test]
fn keywords_only_as_whole_words() {
    assert_eq!(ok("android"), w("android"));
    assert_eq!(ok("ORACLE NOTE"), Query::And(vec![w("ORACLE"), w("NOTE")]));
    assert_eq!(ok("\\AND"), w("AND"), "escaped keyword is a word");
    assert_eq!(ok("\"AND\""), bare(phrase("AND")));
    assert_eq!(
        ok("command:AND"),
        fe("command", "AND"),
        "after a colon it is a value"
    );
    assert_eq!(ok("TO"), w("TO"), "TO is only special inside ranges");
}

#[test]
fn precedence_and_binds_tighter_than_or() {
    assert_eq!(
        ok("a OR b AND c"),
        Query::Or(vec![w("a"), Query::And(vec![w("b"), w("c")])])
    );
    assert_eq!(
        ok("a AND b OR c"),
        Query::Or(vec![Query::And(vec![w("a"), w("b")]), w("c")])
    );
    assert_eq!(
        ok("a b OR c d"),
        Query::Or(vec![
            Query::And(vec![w("a"), w("b")]),
            Query::And(vec![w("c"), w("d")])
        ])
    );
    assert_eq!(
        ok("(a OR b) AND c"),
        Query::And(vec![Query::Or(vec![w("a"), w("b")]), w("c")])
    );
}

#[test]
fn negation_forms() {
    assert_eq!(ok("NOT protocol:ssh"), not(fe("protocol", "ssh")));
    assert_eq!(ok("-protocol:ssh"), not(fe("protocol", "ssh")));
    assert_eq!(ok("!protocol:ssh"), not(fe("protocol", "ssh")));
    assert_eq!(ok("- a"), not(w("a")));
    assert_eq!(ok("NOT NOT a"), not(not(w("a"))));
    assert_eq!(ok("NOT(a OR b)"), not(Query::Or(vec![w("a"), w("b")])));
    assert_eq!(
        ok("NOT a OR b"),
        Query::Or(vec![not(w("a")), w("b")]),
        "NOT binds tighter than OR"
    );
}

#[test]
fn plus_is_a_no_op() {
    assert_eq!(ok("+a"), w("a"));
    assert_eq!(ok("+a +b"), Query::And(vec![w("a"), w("b")]));
    assert_eq!(ok("+-a"), not(w("a")));
}

#[test]
fn not_inside_and_works() {
    let expected = Query::And(vec![w("a"), not(w("b"))]);
    assert_eq!(ok("a AND NOT b"), expected);
    assert_eq!(ok("a NOT b"), expected);
    assert_eq!(ok("a -b"), expected);
    assert_eq!(ok("a && !b"), expected);
    assert_eq!(ok("a OR NOT b"), Query::Or(vec![w("a"), not(w("b"))]));
}

#[test]
fn dash_is_only_an_operator_at_the_start_of_an_operand() {
    assert_eq!(ok("rm -rf"), Query::And(vec![w("rm"), not(w("rf"))]));
    assert_eq!(ok("rm \\-rf"), Query::And(vec![w("rm"), w("-rf")]));
    assert_eq!(ok("args:-rf"), fe("args", "-rf"));
    assert_eq!(ok("a-b"), w("a-b"));
    assert_eq!(ok("a!"), w("a!"));
}

#[test]
fn flattening_of_same_kind() {
    assert_eq!(
        ok("(a AND b) AND (c AND d)"),
        Query::And(vec![w("a"), w("b"), w("c"), w("d")])
    );
    assert_eq!(
        ok("a OR (b OR (c OR d))"),
        Query::Or(vec![w("a"), w("b"), w("c"), w("d")])
    );
    assert_eq!(ok("((a))"), w("a"));
    assert_eq!(
        ok("(a OR b) (c OR d)"),
        Query::And(vec![
            Query::Or(vec![w("a"), w("b")]),
            Query::Or(vec![w("c"), w("d")])
        ]),
        "different kinds are not merged"
    );
}

#[test]
fn field_groups_expand_to_terms() {
    assert_eq!(
        ok("protocol:(ssh OR rdp)"),
        Query::Or(vec![fe("protocol", "ssh"), fe("protocol", "rdp")])
    );
    assert_eq!(
        ok("protocol:(ssh rdp)"),
        Query::And(vec![fe("protocol", "ssh"), fe("protocol", "rdp")])
    );
    assert_eq!(
        ok("protocol:(ssh OR (rdp AND NOT telnet))"),
        Query::Or(vec![
            fe("protocol", "ssh"),
            Query::And(vec![fe("protocol", "rdp"), not(fe("protocol", "telnet"))])
        ])
    );
    assert_eq!(
        ok("user:(root \"domain admin\" adm* *)"),
        Query::And(vec![
            fe("user", "root"),
            term("user", phrase("domain admin")),
            term("user", wild("adm*")),
            term("user", Value::Any),
        ])
    );
    assert_eq!(
        ok("duration:(>=10 <100)"),
        Query::And(vec![
            term("duration", range(inc("10"), Bound::Unbounded)),
            term("duration", range(Bound::Unbounded, exc("100"))),
        ])
    );
    assert_eq!(
        ok("x AND protocol:(ssh rdp)"),
        Query::And(vec![w("x"), fe("protocol", "ssh"), fe("protocol", "rdp")])
    );
    assert_eq!(ok("protocol:(ssh)"), fe("protocol", "ssh"));
}

#[test]
fn phrases_and_escapes() {
    assert_eq!(ok("\"sudo su\""), bare(phrase("sudo su")));
    assert_eq!(ok(r#""say \"hi\"""#), bare(phrase("say \"hi\"")));
    assert_eq!(ok(r#""a\\b""#), bare(phrase("a\\b")));
    assert_eq!(
        ok(r#"path:"C:\Users\x""#),
        term("path", phrase("C:\\Users\\x")),
        "unknown escapes in phrases are kept literally"
    );
    assert_eq!(ok("\"\""), bare(phrase("")));
    assert_eq!(ok("\"a:b (c)\""), bare(phrase("a:b (c)")));
    assert_eq!(ok("\"żółw 中文\""), bare(phrase("żółw 中文")));
}

#[test]
fn word_escapes() {
    assert_eq!(ok("a\\:b"), w("a:b"));
    assert_eq!(ok("a\\ b"), w("a b"));
    assert_eq!(ok("\\(x\\)"), w("(x)"));
    assert_eq!(ok("a\\\\b"), w("a\\b"));
    assert_eq!(ok("client.ip:10.0.0.1"), fe("client.ip", "10.0.0.1"));
    assert_eq!(ok("client.ip:fe80\\:\\:1"), fe("client.ip", "fe80::1"));
}

#[test]
fn wildcards_versus_escaped_stars() {
    assert_eq!(ok("user:adm*"), term("user", wild("adm*")));
    assert_eq!(ok("user:r??t"), term("user", wild("r??t")));
    assert_eq!(ok("rm*"), bare(wild("rm*")));
    assert_eq!(ok("**"), bare(wild("**")));
    assert_eq!(ok("user:a\\*"), fe("user", "a*"), "escaped star is literal");
    assert_eq!(ok("user:\\*"), fe("user", "*"));
    assert_eq!(ok("\\*"), w("*"));
    assert_eq!(ok("a\\?b"), w("a?b"));
    assert_eq!(
        ok("user:a\\*b*"),
        term("user", wild("a\\*b*")),
        "literal star stays escaped in the pattern"
    );
    assert_eq!(
        ok("x:a\\:b*"),
        term("x", wild("a:b*")),
        "other escapes are removed"
    );
    assert_eq!(ok("x:a\\\\*"), term("x", wild("a\\\\*")));
}

#[test]
fn ranges_inclusive_exclusive_open_and_mixed() {
    assert_eq!(
        ok("duration:[1 TO 5]"),
        term("duration", range(inc("1"), inc("5")))
    );
    assert_eq!(
        ok("duration:{1 TO 5}"),
        term("duration", range(exc("1"), exc("5")))
    );
    assert_eq!(
        ok("duration:[1 TO 5}"),
        term("duration", range(inc("1"), exc("5")))
    );
    assert_eq!(
        ok("duration:{1 TO 5]"),
        term("duration", range(exc("1"), inc("5")))
    );
    assert_eq!(
        ok("duration:[* TO 5]"),
        term("duration", range(Bound::Unbounded, inc("5")))
    );
    assert_eq!(
        ok("duration:{10 TO *}"),
        term("duration", range(exc("10"), Bound::Unbounded))
    );
    assert_eq!(
        ok("x:[* TO *]"),
        term("x", range(Bound::Unbounded, Bound::Unbounded))
    );
    assert_eq!(ok("x:[ a   to   b ]"), term("x", range(inc("a"), inc("b"))));
    assert_eq!(
        ok("start_time:[2024-01-01T00:00:00 TO \"2024-12-31 23:59\"]"),
        term(
            "start_time",
            range(inc("2024-01-01T00:00:00"), inc("2024-12-31 23:59"))
        ),
        "bounds may contain colons; phrases allowed"
    );
    assert_eq!(
        ok("x:[\\* TO a\\]b]"),
        term("x", range(inc("*"), inc("a]b")))
    );
    assert_eq!(ok("[a TO b]"), bare(range(inc("a"), inc("b"))));
}

#[test]
fn comparisons_map_to_half_open_ranges() {
    assert_eq!(
        ok("duration:>=100"),
        term("duration", range(inc("100"), Bound::Unbounded))
    );
    assert_eq!(
        ok("duration:>100"),
        term("duration", range(exc("100"), Bound::Unbounded))
    );
    assert_eq!(
        ok("duration:<=100"),
        term("duration", range(Bound::Unbounded, inc("100")))
    );
    assert_eq!(
        ok("duration:<100"),
        term("duration", range(Bound::Unbounded, exc("100")))
    );
    assert_eq!(
        ok("start:>\"2024-01-01 10:00\""),
        term("start", range(exc("2024-01-01 10:00"), Bound::Unbounded))
    );
    assert_eq!(ok(">5"), bare(range(exc("5"), Bound::Unbounded)));
    assert_eq!(
        ok("x:>*"),
        term("x", range(Bound::Unbounded, Bound::Unbounded))
    );
    assert_eq!(
        ok("x:>=5 y:<3"),
        Query::And(vec![
            term("x", range(inc("5"), Bound::Unbounded)),
            term("y", range(Bound::Unbounded, exc("3")))
        ])
    );
}

#[test]
fn field_names() {
    assert_eq!(ok("@timestamp:x"), fe("@timestamp", "x"));
    assert_eq!(ok("_a-b.c:x"), fe("_a-b.c", "x"));
    assert_eq!(ok("and:x"), fe("and", "x"), "a word before ':' is a field");
    assert_eq!(
        ok("recording.connection_policy:\"my policy\""),
        term("recording.connection_policy", phrase("my policy"))
    );
}

#[test]
fn multibyte_words() {
    assert_eq!(ok("user:żółw"), fe("user", "żółw"));
    assert_eq!(ok("中文 OR é"), Query::Or(vec![w("中文"), w("é")]));
}

#[test]
fn fields_are_deduplicated_in_first_seen_order() {
    let q = ok("user:root (protocol:ssh OR user:adm) NOT client.ip:* protocol:(rdp) words");
    assert_eq!(q.fields(), ["user", "protocol", "client.ip"]);
    assert!(ok("just words").fields().is_empty());
    assert!(ok("*").fields().is_empty());
}

// ---------------------------------------------------------------- errors

#[test]
fn error_empty_query() {
    assert_err("", 0, "empty query");
    assert_err("   \t\n", 0, "empty query");
}

#[test]
fn error_unbalanced_parentheses() {
    assert_err("(a", 0, "unclosed parenthesis");
    assert_err("x (a OR b", 2, "unclosed parenthesis");
    assert_err("((a)", 0, "unclosed parenthesis");
    assert_err("(", 0, "unclosed parenthesis");
    assert_err("a)", 1, "unmatched closing parenthesis");
    assert_err("(a))", 3, "unmatched closing parenthesis");
    assert_err(")", 0, "unmatched closing parenthesis");
    assert_err("p:(a", 2, "unclosed parenthesis");
    assert_err("中文 (a", 3, "unclosed parenthesis");
}

#[test]
fn error_empty_parentheses() {
    assert_err("()", 0, "empty parentheses");
    assert_err("a ( )", 2, "empty parentheses");
    assert_err("protocol:()", 9, "empty parentheses");
}

#[test]
fn error_unterminated_phrase() {
    assert_err("\"abc", 0, "unterminated phrase");
    assert_err("a:\"abc", 2, "unterminated phrase");
    assert_err("a \"b\\\"", 2, "unterminated phrase");
    assert_err("é \"é", 2, "unterminated phrase");
}

#[test]
fn error_missing_value_after_field() {
    assert_err("user:", 5, "missing value after 'user:'");
    assert_err("user: root", 5, "missing value after 'user:'");
    assert_err("(user:)", 6, "missing value after 'user:'");
}

#[test]
fn error_dangling_operators() {
    assert_err("a AND", 2, "dangling operator 'AND': missing right operand");
    assert_err("a and ", 2, "dangling operator 'and'");
    assert_err("a OR", 2, "dangling operator 'OR'");
    assert_err("OR b", 0, "dangling operator 'OR': missing left operand");
    assert_err("AND b", 0, "missing left operand");
    assert_err("&& b", 0, "dangling operator '&&'");
    assert_err("NOT", 0, "dangling operator 'NOT': missing operand");
    assert_err("a NOT", 2, "dangling operator 'NOT'");
    assert_err("a -", 2, "dangling operator '-'");
    assert_err("a !", 2, "dangling operator '!'");
    assert_err("+", 0, "dangling operator '+'");
    assert_err("(a AND)", 3, "dangling operator 'AND'");
    assert_err("(NOT)", 1, "dangling operator 'NOT'");
    assert_err(
        "a AND OR b",
        6,
        "dangling operator 'OR': missing left operand",
    );
    assert_err("a OR || b", 5, "dangling operator '||'");
}

#[test]
fn error_ranges() {
    assert_err("x:[1 5]", 5, "range is missing 'TO'");
    assert_err("x:[1]", 4, "range is missing 'TO'");
    assert_err("x:[1 TO 5", 2, "unclosed range");
    assert_err("x:[1 TO", 2, "unclosed range");
    assert_err("x:[1", 2, "unclosed range");
    assert_err("x:[", 2, "unclosed range");
    assert_err("x:[1 TO]", 7, "missing upper bound");
    assert_err("x:[]", 3, "missing lower bound");
    assert_err("x:[1 TO 5 6]", 10, "expected ']' or '}'");
    assert_err("x:[\"1 TO 5]", 3, "unterminated phrase");
    assert_err("x:[\"1\"TO 5]", 6, "range is missing 'TO'");
    assert_err("a ] b", 2, "unexpected ']'");
    assert_err("x:}", 2, "unexpected '}'");
}

#[test]
fn error_comparisons() {
    assert_err("x:>", 3, "missing bound after '>'");
    assert_err("x:>= 5", 4, "missing bound after '>='");
    assert_err("x:<)", 3, "missing bound after '<'");
}

#[test]
fn error_invalid_field_names() {
    assert_err("1abc:x", 0, "invalid field name '1abc'");
    assert_err("a b*:x", 2, "invalid field name 'b*'");
    assert_err("é:x", 0, "invalid field name 'é'");
    assert_err("a\\ b:x", 0, "invalid field name");
    assert_err(":x", 0, "missing field name before ':'");
    assert_err("a :x", 2, "missing field name");
    assert_err("\"a\":x", 3, "unexpected ':'");
}

#[test]
fn error_nested_fields() {
    assert_err("a:b:c", 3, "nested field");
    assert_err("a::b", 2, "nested field");
    assert_err("a:\"b\":c", 5, "nested field");
    assert_err(
        "a:(b:c)",
        4,
        "nested field: 'b:' inside the value of field 'a'",
    );
    assert_err("a:(x OR (b:c))", 10, "nested field");
    assert_err("a:[1 TO 2]:c", 10, "nested field");
}

#[test]
fn error_dangling_escape() {
    assert_err("abc\\", 3, "dangling escape");
    assert_err("x:[a\\", 4, "dangling escape");
}

#[test]
fn error_display_includes_position() {
    assert_eq!(
        err("a AND").to_string(),
        "dangling operator 'AND': missing right operand at position 2"
    );
}

// ---------------------------------------------------------------- limits

#[test]
fn nesting_limit_on_parentheses() {
    let at_limit = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(ok(&at_limit), w("a"));
    let over = format!(
        "{}a{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert_err(&over, MAX_DEPTH, "query nested too deeply");
    assert_err(&"(".repeat(9_000), MAX_DEPTH, "query nested too deeply");
    let groups = format!("x:{}a", "(".repeat(MAX_DEPTH + 1));
    assert_err(&groups, 2 + MAX_DEPTH, "query nested too deeply");
}

#[test]
fn nesting_limit_on_negations() {
    let at_limit = format!("{}a", "NOT ".repeat(MAX_DEPTH));
    let mut expected = w("a");
    for _ in 0..MAX_DEPTH {
        expected = not(expected);
    }
    assert_eq!(ok(&at_limit), expected);
    let over = format!("{}a", "NOT ".repeat(MAX_DEPTH + 1));
    assert_err(&over, 4 * MAX_DEPTH, "query nested too deeply");
    assert_err(
        &format!("{}a", "-".repeat(9_000)),
        MAX_DEPTH,
        "nested too deeply",
    );
    assert_eq!(
        ok(&format!("{}a", "+".repeat(9_000))),
        w("a"),
        "+ does not nest"
    );
}

#[test]
fn long_flat_queries_are_fine() {
    let input = vec!["a"; 1_500].join(" OR ");
    match ok(&input) {
        Query::Or(items) => assert_eq!(items.len(), 1_500),
        other => panic!("expected Or, got {other:?}"),
    }
}

#[test]
fn length_limit_counts_characters_not_bytes() {
    assert_eq!(
        ok(&"é".repeat(MAX_QUERY_CHARS)),
        w(&"é".repeat(MAX_QUERY_CHARS))
    );
    assert_err(
        &"a".repeat(MAX_QUERY_CHARS + 1),
        MAX_QUERY_CHARS,
        "too long",
    );
    assert_err(
        &" ".repeat(MAX_QUERY_CHARS + 1),
        MAX_QUERY_CHARS,
        "too long",
    );
}

// ---------------------------------------------------------------- Display

#[test]
fn display_is_canonical() {
    let cases = [
        ("a b", "a AND b"),
        ("a || b && c", "a OR (b AND c)"),
        ("-a", "NOT a"),
        ("!a", "NOT a"),
        ("+a", "a"),
        ("protocol:(ssh OR rdp)", "protocol:ssh OR protocol:rdp"),
        ("NOT (a OR b)", "NOT (a OR b)"),
        ("x:[5 TO *]", "x:>=5"),
        ("x:{* TO 5]", "x:<=5"),
        ("x:{* TO *}", "x:[* TO *]"),
        ("x:{a TO b]", "x:{a TO b]"),
        ("rm \\-rf", "rm AND \\-rf"),
        ("args:-rf", "args:-rf"),
        ("\\and", "\\and"),
        ("x:and", "x:and"),
        ("\"q\\\"uote\"", "\"q\\\"uote\""),
        ("a\\:b", "a\\:b"),
    ];
    for (input, expected) in cases {
        assert_eq!(ok(input).to_string(), expected, "display of {input:?}");
    }
}

#[test]
fn display_round_trips() {
    let queries = [
        "*",
        "psm.connection_policy:my_ssh_connection_policy",
        "protocol:ssh AND user:root",
        "protocol:(ssh OR rdp) NOT user:root",
        "a OR b AND c",
        "(a OR b) AND (c OR d)",
        "NOT NOT a",
        "-a -b -(c OR d)",
        "rm -rf",
        "\"sudo su\"",
        r#""say \"hi\" \\ C:\path""#,
        "user:adm* OR user:r??t",
        "user:a\\*b* x:\\*",
        "client.ip:*",
        "duration:[1 TO 5]",
        "duration:{1 TO 5}",
        "duration:[* TO 5}",
        "duration:>=100",
        "duration:<\"1 0\"",
        "x:>\\=5",
        "start:[2024-01-01T00:00:00 TO \"2024 12\"]",
        "x:[\"\" TO \\*]",
        "a\\ b c\\:d \\(e\\)",
        "\\AND \\or \\-x \\+y \\!z \\&&w \\>v",
        "x:AND y:-1 z:&&",
        "x:żółw OR 中文",
        "@timestamp:x _a-b.c:\"\"",
        "[a TO b] >5 <=c",
        "x:(a (b OR -c) >3)",
        "NOT * OR a",
        "a\\\\b\\\\*",
        "x:a\\?b?",
    ];
    for input in queries {
        let first = ok(input);
        let printed = first.to_string();
        assert_eq!(
            parse(&printed),
            Ok(first.clone()),
            "{input:?} printed as {printed:?}"
        );
        assert_eq!(
            ok(&printed).to_string(),
            printed,
            "canonical form is a fixed point"
        );
    }
}

#[test]
fn display_of_hand_built_queries_with_awkward_text() {
    let queries = [
        w("AND"),
        w("-x"),
        w("a b\tc"),
        w("\"quoted\""),
        w(">5"),
        fe("x", "<5"),
        fe("x", "(a)"),
        bare(phrase("\\\"")),
        term("x", range(exc("=5"), Bound::Unbounded)),
        term("x", range(inc("a]b}c d\"e"), exc("*"))),
        bare(wild("-a*")),
        term("x", wild("a\\*b:c*")),
        Query::And(vec![
            Query::Or(vec![w("a"), w("b")]),
            not(Query::And(vec![w("c"), w("d")])),
        ]),
    ];
    for query in queries {
        let printed = query.to_string();
        assert_eq!(parse(&printed), Ok(query.clone()), "printed as {printed:?}");
    }
}

// ---------------------------------------------------------------- fuzz

/// Numerical Recipes LCG; deterministic so failures are reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn fuzz_never_panics_and_round_trips() {
    const PIECES: &[&str] = &[
        "a", "b", "x", "é", "中", "1", "AND", "or", "NOT", "TO", " ", " ", "  ", "\t", ":", "(",
        ")", "\"", "\\", "*", "?", "[", "]", "{", "}", "-", "+", "!", "&&", "||", "&", "|", ">",
        "<", "=", ".", "@", "_", "user:", "x:(", "[1 TO 2]", "{* TO b}", ">=", "\"a b\"",
    ];
    let mut rng = Lcg(0x5eed_c0de);
    let mut parsed = 0usize;
    for _ in 0..20_000 {
        let len = rng.below(12);
        let input: String = (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        let chars = input.chars().count();
        match parse(&input) {
            Ok(query) => {
                parsed += 1;
                let printed = query.to_string();
                assert_eq!(
                    parse(&printed),
                    Ok(query.clone()),
                    "input {input:?} printed as {printed:?}"
                );
            }
            Err(e) => {
                assert!(
                    e.position <= chars,
                    "position {} beyond {input:?}",
                    e.position
                );
                assert!(!e.message.is_empty());
            }
        }
    }
    // Guard against the generator degenerating into only-errors.
    assert!(parsed > 2_000, "only {parsed} inputs parsed");
}
