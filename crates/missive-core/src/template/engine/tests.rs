use super::*;
use crate::template::VariableType;
use serde_json::json;

fn unit(html: &str) -> Unit {
    Unit {
        subject: None,
        html: html.to_owned(),
        text: None,
        variables: Vec::new(),
        layout: None,
    }
}

fn vars(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        _ => unreachable!("an object"),
    }
}

fn declared(key: &str, kind: VariableType, fallback: Option<Json>) -> Variable {
    Variable {
        key: key.to_owned(),
        kind,
        fallback_value: fallback,
    }
}

fn build(root: &Unit, others: &[(&str, Unit)]) -> Result<Compiled, TemplateError> {
    let available = others
        .iter()
        .map(|(alias, unit)| ((*alias).to_owned(), unit.clone()))
        .collect();
    Compiled::build(root, &available)
}

#[test]
fn html_is_escaped_and_text_and_subject_are_not() {
    let root = Unit {
        subject: Some("Hi {{NAME}} & co".into()),
        html: "<p>{{NAME}} {{{NAME}}}</p>".into(),
        text: Some("Hi {{NAME}}".into()),
        ..unit("")
    };
    let out = build(&root, &[])
        .unwrap()
        .render(&vars(json!({"NAME": "<b>Tom & Jerry</b>"})), true)
        .unwrap();
    assert_eq!(
        out.html,
        "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt; <b>Tom & Jerry</b></p>"
    );
    assert_eq!(out.text.as_deref(), Some("Hi <b>Tom & Jerry</b>"));
    assert_eq!(out.subject.as_deref(), Some("Hi <b>Tom & Jerry</b> & co"));
    let without_subject = build(&root, &[])
        .unwrap()
        .render(&vars(json!({"NAME": "x"})), false)
        .unwrap();
    assert_eq!(without_subject.subject, None);
}

#[test]
fn a_missing_variable_is_named_with_its_position_and_fallbacks_fill_in() {
    let root = Unit {
        variables: vec![declared(
            "GREETING",
            VariableType::String,
            Some(json!("Hello")),
        )],
        ..unit("{{GREETING}},\n  {{NAME}}!")
    };
    let compiled = build(&root, &[]).unwrap();
    let err = compiled.render(&Map::new(), true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "variable `NAME` is used (html, line 2, column 3) but neither given nor declared with a \
         fallback_value"
    );
    let out = compiled
        .render(&vars(json!({"NAME": "Ann"})), true)
        .unwrap();
    assert_eq!(out.html, "Hello,\n  Ann!");
    let out = compiled
        .render(&vars(json!({"NAME": "Ann", "GREETING": "Hey"})), true)
        .unwrap();
    assert_eq!(out.html, "Hey,\n  Ann!");
}

#[test]
fn values_must_have_their_declared_type() {
    let root = Unit {
        variables: vec![
            declared("COUNT", VariableType::Number, None),
            declared("NAME", VariableType::String, None),
        ],
        ..unit("{{NAME}}: {{COUNT}}")
    };
    let compiled = build(&root, &[]).unwrap();
    assert_eq!(
        compiled
            .render(&vars(json!({"COUNT": "3", "NAME": "x"})), true)
            .unwrap_err(),
        TemplateError::WrongType {
            key: "COUNT".into(),
            expected: VariableType::Number
        }
    );
    assert!(
        compiled
            .render(&vars(json!({"COUNT": 3, "NAME": 4})), true)
            .is_err()
    );
    assert_eq!(
        compiled
            .render(&vars(json!({"COUNT": 3.5, "NAME": "x"})), true)
            .unwrap()
            .html,
        "x: 3.5"
    );
}

#[test]
fn partials_insert_html_or_text_and_layouts_wrap_at_content() {
    let root = Unit {
        subject: Some("{{> sign}} news".into()),
        text: Some("Hello {{NAME}}\n{{> sign}}".into()),
        layout: Some("frame".into()),
        ..unit("<p>Hello {{NAME}}</p>{{> sign}}")
    };
    let sign = Unit {
        text: Some("-- {{TEAM}}".into()),
        variables: vec![declared("TEAM", VariableType::String, Some(json!("Acme")))],
        ..unit("<i>{{TEAM}}</i>")
    };
    let frame = Unit {
        text: Some("{{{@content}}}\n(footer)".into()),
        ..unit("<html>{{{@content}}}<footer>{{> sign}}</footer></html>")
    };
    let out = build(&root, &[("sign", sign), ("frame", frame)])
        .unwrap()
        .render(&vars(json!({"NAME": "<Ann>"})), true)
        .unwrap();
    assert_eq!(
        out.html,
        "<html><p>Hello &lt;Ann&gt;</p><i>Acme</i><footer><i>Acme</i></footer></html>"
    );
    assert_eq!(out.text.as_deref(), Some("Hello <Ann>\n-- Acme\n(footer)"));
    assert_eq!(out.subject.as_deref(), Some("-- Acme news"));
}

#[test]
fn layouts_without_text_leave_the_text_part_alone_and_layouts_nest() {
    let root = Unit {
        text: Some("plain".into()),
        layout: Some("inner".into()),
        ..unit("body")
    };
    let inner = Unit {
        layout: Some("outer".into()),
        ..unit("[{{{@content}}}]")
    };
    let outer = unit("<{{{@content}}}>");
    let out = build(&root, &[("inner", inner), ("outer", outer)])
        .unwrap()
        .render(&Map::new(), true)
        .unwrap();
    assert_eq!(out.html, "<[body]>");
    assert_eq!(out.text.as_deref(), Some("plain"));
}

#[test]
fn unknown_partials_and_layouts_are_named() {
    let err = build(&unit("x\n {{> nowhere}}"), &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "html, line 2, column 2: unknown partial `nowhere`: no published template has this alias"
    );
    let nested = build(&unit("{{> a}}"), &[("a", unit("{{> b}}"))]).unwrap_err();
    assert!(
        nested
            .to_string()
            .starts_with("template `a` html, line 1, column 1: unknown partial `b`"),
        "{nested}"
    );
    let layout = Unit {
        layout: Some("gone".into()),
        ..unit("x")
    };
    assert!(
        build(&layout, &[])
            .unwrap_err()
            .to_string()
            .contains("unknown layout `gone`")
    );
}

#[test]
fn partials_that_include_each_other_are_refused_not_run() {
    let err = build(
        &unit("{{> a}}"),
        &[("a", unit("a{{> b}}")), ("b", unit("b{{> a}}"))],
    )
    .unwrap_err();
    assert_eq!(
        err,
        TemplateError::Cycle {
            chain: vec!["(this template)".into(), "a".into(), "b".into(), "a".into()]
        }
    );
    let own = build(&unit("{{> me}}"), &[("me", unit("{{> me}}"))]).unwrap_err();
    assert!(matches!(own, TemplateError::Cycle { .. }));
    let layout_loop = Unit {
        layout: Some("l".into()),
        ..unit("x")
    };
    let l = Unit {
        layout: Some("l".into()),
        ..unit("{{{@content}}}")
    };
    assert!(matches!(
        build(&layout_loop, &[("l", l)]).unwrap_err(),
        TemplateError::Cycle { .. }
    ));
}

#[test]
fn include_depth_is_capped_even_through_a_shared_partial() {
    let chain: Vec<(String, Unit)> = (0..=MAX_INCLUDE_DEPTH)
        .map(|i| {
            let html = if i == MAX_INCLUDE_DEPTH {
                "leaf".to_owned()
            } else {
                format!("{{{{> p{}}}}}", i + 1)
            };
            (format!("p{i}"), unit(&html))
        })
        .collect();
    let available: HashMap<String, Unit> = chain.into_iter().collect();
    // p0 → ... → p8 is 9 deep.
    assert!(matches!(
        Compiled::build(&unit("{{> p0}}"), &available).unwrap_err(),
        TemplateError::TooDeep { .. }
    ));
    // 8 deep is fine.
    assert!(Compiled::build(&unit("{{> p1}}"), &available).is_ok());
    // p1 reached first at depth 1 (8 deep), then again through p0 (9 deep).
    assert!(matches!(
        Compiled::build(&unit("{{> p1}}{{> p0}}"), &available).unwrap_err(),
        TemplateError::TooDeep { .. }
    ));
}

#[test]
fn the_deepest_allowed_template_renders_on_a_small_stack() {
    // Every level of partials nests the most blocks a source may have.
    let blocks = |inner: &str| {
        "{{#if X}}".repeat(crate::template::MAX_BLOCK_DEPTH)
            + inner
            + &"{{/if}}".repeat(crate::template::MAX_BLOCK_DEPTH)
    };
    let available: HashMap<String, Unit> = (1..=MAX_INCLUDE_DEPTH)
        .map(|i| {
            let inner = if i == MAX_INCLUDE_DEPTH {
                "leaf".to_owned()
            } else {
                format!("{{{{> p{}}}}}", i + 1)
            };
            (format!("p{i}"), unit(&blocks(&inner)))
        })
        .collect();
    let compiled = Compiled::build(&unit(&blocks("{{> p1}}")), &available).unwrap();
    let rendered = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || compiled.render(&vars(json!({"X": true})), true))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(rendered.html, "leaf");
}

#[test]
fn output_is_capped() {
    // Small variables, amplified by a loop.
    let root = unit(&format!(
        "{{{{#each ITEMS}}}}{}{{{{/each}}}}",
        "{{../BIG}}".repeat(10)
    ));
    let err = build(&root, &[])
        .unwrap()
        .render(
            &vars(json!({ "BIG": "x".repeat(50_000), "ITEMS": [1, 2, 3] })),
            true,
        )
        .unwrap_err();
    assert_eq!(err, TemplateError::OutputTooLarge { part: Part::Html });
}

#[test]
fn loops_that_produce_nothing_still_cost_and_are_stopped() {
    let nested = "{{#each @root.O}}".repeat(6) + &"{{/each}}".repeat(6);
    let object: Map<String, Json> = (0..40).map(|i| (format!("K{i}"), json!(i))).collect();
    let data = vars(json!({ "O": object }));
    let started = std::time::Instant::now();
    let err = build(&unit(&nested), &[])
        .unwrap()
        .render(&data, true)
        .unwrap_err();
    assert_eq!(err, TemplateError::TooCostly);
    // Unchecked, 40^6 iterations would run for hours; the budget stops it after tens of
    // thousands. The bound only tells a stop from a hang, so a loaded machine cannot fail it.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn partial_fan_out_is_costed_before_rendering() {
    let fan = |next: &str| unit(&format!("{{{{> {next}}}}}").repeat(40));
    let available: HashMap<String, Unit> = [
        ("a".to_owned(), fan("b")),
        ("b".to_owned(), fan("c")),
        ("c".to_owned(), fan("d")),
        ("d".to_owned(), fan("e")),
        ("e".to_owned(), unit("x")),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        Compiled::build(&unit("{{> a}}"), &available).unwrap_err(),
        TemplateError::TooCostly
    );
}

#[test]
fn a_subject_may_not_break_lines() {
    let root = Unit {
        subject: Some("Hi {{NAME}}".into()),
        ..unit("x")
    };
    let compiled = build(&root, &[]).unwrap();
    assert_eq!(
        compiled
            .render(&vars(json!({"NAME": "a\r\nBcc: x@y"})), true)
            .unwrap_err(),
        TemplateError::SubjectLineBreak
    );
}

#[test]
fn each_iterates_lists_and_objects_like_handlebars() {
    let root = unit(
        "{{#each ITEMS}}{{@index}}:{{name}}({{../CURRENCY}}){{#if @last}}.{{else}}, {{/if}}{{/each}}\
         |{{#each TOTALS as |value key|}}{{key}}={{value}};{{/each}}\
         |{{#each EMPTY}}x{{else}}none{{/each}}\
         |{{#each ITEMS as |item|}}{{item.name}}{{#if @first}}!{{/if}}{{/each}}",
    );
    let out = build(&root, &[])
        .unwrap()
        .render(
            &vars(json!({
                "CURRENCY": "EUR",
                "ITEMS": [{"name": "tea"}, {"name": "cake"}],
                "TOTALS": {"net": 10, "tax": 2},
                "EMPTY": [],
            })),
            true,
        )
        .unwrap();
    assert_eq!(
        out.html,
        "0:tea(EUR), 1:cake(EUR).|net=10;tax=2;|none|tea!cake"
    );
    let missing = build(&unit("{{#each NOPE}}x{{/each}}"), &[])
        .unwrap()
        .render(&Map::new(), true)
        .unwrap_err();
    assert!(matches!(missing, TemplateError::MissingVariable { name, .. } if name == "NOPE"));
}

#[test]
fn formatting_helpers() {
    let root = unit(
        "{{upper NAME}} {{lower NAME}} [{{trim PAD}}] {{truncate LONG 5}} {{truncate LONG 5 \"...\"}} \
         {{default NICK \"friend\"}} {{default NAME \"friend\"}} {{number AMOUNT}} \
         {{number AMOUNT decimals=0}} {{number NEG 1 separator=\" \"}} {{join TAGS}} {{join TAGS \"/\"}} \
         {{#if (eq (len TAGS) 2)}}two{{/if}}",
    );
    let out = build(&root, &[])
        .unwrap()
        .render(
            &vars(json!({
                "NAME": "Ann", "PAD": "  x  ", "LONG": "abcdefgh", "NICK": "",
                "AMOUNT": 1_234_567.891, "NEG": -9_876.54, "TAGS": ["a", "b"],
            })),
            true,
        )
        .unwrap();
    assert_eq!(
        out.html,
        "ANN ann [x] abcde… abcde... friend Ann 1,234,567.89 1,234,568 -9 876.5 a, b a/b two"
    );
    let unknown = build(&unit("{{default MISSING \"x\"}}"), &[])
        .unwrap()
        .render(&Map::new(), true)
        .unwrap();
    assert_eq!(unknown.html, "x");
    let err = build(&unit("{{upper MISSING}}"), &[])
        .unwrap()
        .render(&Map::new(), true)
        .unwrap_err();
    assert!(matches!(err, TemplateError::MissingVariable { name, .. } if name == "MISSING"));
}

#[test]
fn variables_are_capped() {
    let big = "x".repeat(MAX_VARIABLES_BYTES);
    let err = build(&unit("x"), &[])
        .unwrap()
        .render(&vars(json!({ "BIG": big })), true)
        .unwrap_err();
    assert!(err.to_string().starts_with("variables: "), "{err}");
}
