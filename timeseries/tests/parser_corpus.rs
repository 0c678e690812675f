//! Runs every query of the upstream PromQL conformance scripts (`.test` files)
//! through the project's own parser (`opendata_timeseries::promql::parser`), with
//! every experimental feature on.
//!
//! The scripts live outside the repository: `$OPENDATA_PROMQLTEST_DIR`, or by default
//! `../shared/promqltest` next to the workspace root (as for `tests/promqltest.rs`).
//!
//! For every eval:
//! - expected to succeed: the query must parse; its printed form must parse to the
//!   same tree (spans aside) and print the same again, and so must its pretty
//!   (multi-line) form.
//! - expected to fail (`expect fail`, `eval_fail`): many such queries fail only when
//!   evaluated (duplicate series, a NaN parameter, ...). A parse failure is required
//!   where the expected message is a parse error.
//!
//! Counts are printed to stderr.

#![allow(clippy::unwrap_used)]

#[path = "promqltest/script.rs"]
#[allow(dead_code)]
mod script;

use std::io::Write;
use std::path::PathBuf;

use opendata_timeseries::promql::parser::{self, Expr, Features, ParserOptions};
use script::{Command, Eval, MessageMatch, parse_script};

fn script_dir() -> PathBuf {
    match std::env::var_os("OPENDATA_PROMQLTEST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("shared")
            .join("promqltest"),
    }
}

fn options() -> ParserOptions {
    ParserOptions {
        features: Features::all(),
        ..Default::default()
    }
}

fn structure(e: &Expr) -> String {
    format!("{:?}", e.clone().strip_spans())
}

/// Whether an expected failure message is one of the parser's.
fn is_parse_error_message(m: &MessageMatch) -> bool {
    let text = match m {
        MessageMatch::Any => return false,
        other => format!("{other:?}"),
    };
    text.contains("parse error")
}

#[derive(Default, Debug)]
struct Counts {
    evals: usize,
    parsed: usize,
    round_tripped: usize,
    pretty_round_tripped: usize,
    expected_fail: usize,
    expected_fail_parse_error: usize,
    expected_fail_at_evaluation: usize,
}

#[test]
fn should_parse_every_query_of_the_upstream_scripts() {
    let dir = script_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the PromQL test scripts are missing: cannot read {} ({e}); set \
                 OPENDATA_PROMQLTEST_DIR to the folder holding the upstream .test files",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());

    let mut c = Counts::default();
    let mut problems: Vec<String> = Vec::new();
    let mut failed_to_parse: Vec<String> = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let evals: Vec<Eval> = parse_script(&text)
            .commands
            .into_iter()
            .filter_map(|c| match c {
                Command::Eval(e) => Some(*e),
                _ => None,
            })
            .collect();
        for eval in evals {
            c.evals += 1;
            let at = format!("{name}:{}: {}", eval.line, eval.query);
            let ours = parser::parse_with(&eval.query, &options());
            if let Some(fail) = &eval.fail {
                c.expected_fail += 1;
                let must_fail = is_parse_error_message(fail);
                match &ours {
                    Err(err) => {
                        c.expected_fail_parse_error += 1;
                        failed_to_parse.push(format!("{at}: {err}"));
                    }
                    Ok(e) if must_fail => {
                        problems.push(format!("{at}: expected a parse failure, parsed as {e}"))
                    }
                    Ok(_) => c.expected_fail_at_evaluation += 1,
                }
                continue;
            }
            let expr = match ours {
                Ok(e) => e,
                Err(err) => {
                    problems.push(format!("{at}: does not parse: {err}"));
                    continue;
                }
            };
            c.parsed += 1;
            let printed = expr.to_string();
            match parser::parse_with(&printed, &options()) {
                Ok(again) if structure(&again) == structure(&expr) => {
                    if again.to_string() == printed {
                        c.round_tripped += 1;
                    } else {
                        problems.push(format!("{at}: printing is not stable: {printed}"));
                    }
                }
                Ok(again) => problems.push(format!(
                    "{at}: printed as {printed}, which reads back as another tree: {again}"
                )),
                Err(err) => problems.push(format!(
                    "{at}: printed as {printed}, which does not parse: {err}"
                )),
            }
            let pretty = expr.pretty();
            match parser::parse_with(&pretty, &options()) {
                Ok(again) if structure(&again) == structure(&expr) => c.pretty_round_tripped += 1,
                _ => problems.push(format!(
                    "{at}: the pretty form does not read back: {pretty}"
                )),
            }
        }
    }

    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "parser corpus over {} files: {c:#?}", files.len());
    for f in &failed_to_parse {
        let _ = writeln!(err, "  expected to fail, fails to parse: {f}");
    }
    for p in &problems {
        let _ = writeln!(err, "  PROBLEM {p}");
    }
    assert!(
        problems.is_empty(),
        "{} problems (listed above)",
        problems.len()
    );
    assert_eq!(c.parsed + c.expected_fail, c.evals);
    assert_eq!(c.round_tripped, c.parsed);
    assert_eq!(c.pretty_round_tripped, c.parsed);
    assert!(c.evals > 1000, "only {} evals found", c.evals);
}
