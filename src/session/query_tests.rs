//! The query protocols with `onQuery`: what the session answers itself, what it asks JS, and
//! how errors, row limits and transactions move it. JS's rows are not simulated here (they go
//! to the connection directly); the hooks answer with what JS would report.

use std::cell::RefCell;
use std::rc::Rc;

use super::query::{Description, QueryCall, QueryMode, QueryOutcome};
use super::tests::{config, error_code, messages, startup, tags, typed, Harness};
use super::*;
use crate::auth::AuthMode;
use crate::protocol::backend::{ColumnDescription, TransactionStatus};
use crate::protocol::types::Value;
use crate::protocol::{PgError, SqlState};

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn parse(name: &str, sql: &str, types: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, name);
    cstr(&mut b, sql);
    b.extend((types.len() as i16).to_be_bytes());
    for t in types {
        b.extend(t.to_be_bytes());
    }
    typed(b'P', &b)
}

fn bind(portal: &str, statement: &str, formats: &[i16], params: &[Option<&[u8]>], results: &[i16]) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, portal);
    cstr(&mut b, statement);
    b.extend((formats.len() as i16).to_be_bytes());
    for f in formats {
        b.extend(f.to_be_bytes());
    }
    b.extend((params.len() as i16).to_be_bytes());
    for p in params {
        match p {
            None => b.extend((-1i32).to_be_bytes()),
            Some(v) => {
                b.extend((v.len() as i32).to_be_bytes());
                b.extend(*v);
            }
        }
    }
    b.extend((results.len() as i16).to_be_bytes());
    for f in results {
        b.extend(f.to_be_bytes());
    }
    typed(b'B', &b)
}

fn describe(kind: u8, name: &str) -> Vec<u8> {
    let mut b = vec![kind];
    cstr(&mut b, name);
    typed(b'D', &b)
}

fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, portal);
    b.extend(max_rows.to_be_bytes());
    typed(b'E', &b)
}

fn close(kind: u8, name: &str) -> Vec<u8> {
    let mut b = vec![kind];
    cstr(&mut b, name);
    typed(b'C', &b)
}

fn sync() -> Vec<u8> {
    typed(b'S', &[])
}

fn query(sql: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, sql);
    typed(b'Q', &b)
}

type Calls = Rc<RefCell<Vec<QueryCall>>>;

/// A ready session whose `onQuery` records each call and answers with `answer(call)`.
fn ready(on_describe: bool, answer: impl Fn(&QueryCall) -> QueryOutcome + 'static) -> (Harness, Calls) {
    let calls: Calls = Rc::default();
    let seen = calls.clone();
    let hooks = HookSet { on_query: true, on_describe, ..HookSet::default() };
    let mut h = Harness::new(config(AuthMode::None, hooks), move |request, _| match request {
        HookRequest::Query(call) => {
            seen.borrow_mut().push((**call).clone());
            HookResult::Query(answer(call))
        }
        HookRequest::Describe(_) => HookResult::Described(Description {
            param_types: vec![23],
            columns: vec![ColumnDescription { name: "a".into(), type_oid: 25, type_size: -1, format: 0 }],
        }),
        other => panic!("unexpected hook {other:?}"),
    });
    let (out, closed) = h.send(&startup(&[("user", "u")]));
    assert!(!closed);
    assert!(tags(&out).ends_with('Z'));
    (h, calls)
}

/// One result completed.
fn completed() -> QueryOutcome {
    QueryOutcome { completed: 1, ..QueryOutcome::default() }
}

fn ready_status(out: &[u8]) -> u8 {
    let all = messages(out);
    let (_, body) = all.last().expect("a message");
    body[0]
}

#[test]
fn parse_bind_describe_execute_sync_runs_the_statement_once() {
    let (mut h, calls) = ready(false, |call| match call.mode {
        QueryMode::Describe => QueryOutcome::default(),
        _ => completed(),
    });
    let five = 5i32.to_be_bytes();
    // Describe and Execute of the portal arrive together (node-postgres, pgbench): one call.
    let pipeline = [
        parse("s", "select $1::int4", &[23]),
        bind("", "s", &[1], &[Some(&five)], &[1]),
        describe(b'P', ""),
        execute("", 0),
        sync(),
    ]
    .concat();
    let (out, _) = h.send(&pipeline);
    assert_eq!(tags(&out), "12Z", "ParseComplete, BindComplete, then JS's rows, then ReadyForQuery");
    {
        let calls = calls.borrow();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].mode, QueryMode::DescribeExecute);
        assert_eq!(*calls[0].params, vec![Value::Number(5.0)]);
        assert_eq!(*calls[0].result_formats, vec![1]);
    }
    // Apart (the Execute not yet received): Describe runs it, Execute goes on with that result.
    h.send(&[bind("", "s", &[1], &[Some(&five)], &[1]), describe(b'P', "")].concat());
    let (out, _) = h.send(&[execute("", 0), sync()].concat());
    assert_eq!(tags(&out), "Z");
    let calls = calls.borrow();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1].mode, QueryMode::Describe);
    assert!(!calls[1].resume);
    assert_eq!(calls[2].mode, QueryMode::Execute { max_rows: 0 });
    assert_eq!(calls[2].cursor, calls[1].cursor);
    assert!(calls[2].resume, "Execute goes on with the result Describe made");
}

#[test]
fn errors_skip_to_sync_and_name_postgres_sqlstates() {
    let (mut h, calls) = ready(false, |_| completed());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (bind("", "nope", &[], &[], &[]), "26000"),
        (execute("nope", 0), "34000"),
        (describe(b'P', "nope"), "34000"),
        (describe(b'S', "nope"), "26000"),
        ([parse("", "select $1, $2", &[]), bind("", "", &[], &[Some(b"1")], &[])].concat(), "08P01"),
        ([parse("", "select $1", &[23]), bind("", "", &[1], &[Some(&[0, 1])], &[])].concat(), "22P03"),
        ([parse("", "select $1", &[23]), bind("", "", &[0], &[Some(b"x")], &[])].concat(), "22P02"),
        ([parse("", "select $1", &[23]), bind("", "", &[2], &[Some(b"1")], &[])].concat(), "22023"),
        ([parse("", "select 1", &[]), bind("", "", &[0, 0], &[], &[])].concat(), "08P01"),
        ([parse("d", "select 1", &[]), parse("d", "select 2", &[])].concat(), "42P05"),
        ([parse("", "select 1", &[]), bind("p", "", &[], &[], &[]), bind("p", "", &[], &[], &[])].concat(), "42P03"),
        (parse("", "select 1; select 2", &[]), "42601"),
    ];
    for (messages_in, code) in cases {
        // What follows the error up to Sync is skipped: no hook runs for this Execute.
        let (out, closed) = h.send(&[messages_in, execute("", 0), sync()].concat());
        assert!(!closed);
        assert_eq!(error_code(&out), code, "{:?}", tags(&out));
        assert!(tags(&out).ends_with("EZ"), "{}", tags(&out));
        assert_eq!(ready_status(&out), b'I');
        h.send(&[close(b'S', "d"), close(b'P', "p"), sync()].concat());
    }
    assert!(calls.borrow().is_empty());
}

#[test]
fn transaction_status_follows_the_commands() {
    let (mut h, _) = ready(false, |call| match &*call.sql {
        "begin" => completed(),
        "rollback" => completed(),
        "rollback to savepoint a" => completed(),
        sql if sql.contains("fail") => {
            QueryOutcome { error: Some(PgError::error(SqlState::INTERNAL_ERROR, "boom")), ..QueryOutcome::default() }
        }
        _ => completed(),
    });
    let (out, _) = h.send(&query("begin"));
    assert_eq!(ready_status(&out), b'T');
    assert_eq!(h.session.state().transaction_status, TransactionStatus::InTransaction);
    let (out, _) = h.send(&query("select fail"));
    assert_eq!(tags(&out), "EZ");
    assert_eq!(ready_status(&out), b'E');
    let (out, _) = h.send(&query("select 1"));
    assert_eq!(error_code(&out), "25P02");
    assert_eq!(ready_status(&out), b'E');
    let (out, _) = h.send(&[parse("", "select 1", &[]), sync()].concat());
    assert_eq!(error_code(&out), "25P02");
    assert_eq!(ready_status(&out), b'E');
    let (out, _) = h.send(&query("rollback to savepoint a"));
    assert_eq!(ready_status(&out), b'T');
    let (out, _) =
        h.send(&[parse("", "select fail", &[]), bind("", "", &[], &[], &[]), execute("", 0), sync()].concat());
    assert_eq!(tags(&out), "12EZ");
    assert_eq!(ready_status(&out), b'E');
    let (out, _) = h.send(&query("rollback"));
    assert_eq!(ready_status(&out), b'I');
    // Several statements in one Query: each completed one counts.
    let (mut h, _) = ready(false, |_| QueryOutcome { completed: 2, ..Default::default() });
    let (out, _) = h.send(&query("begin; select 1"));
    assert_eq!(ready_status(&out), b'T');
}

#[test]
fn portals_are_dropped_at_the_end_of_their_transaction_and_js_hears_of_it() {
    let (mut h, calls) =
        ready(false, |call| if call.mode == QueryMode::Describe { QueryOutcome::default() } else { completed() });
    h.send(&[parse("", "select 1", &[]), bind("p", "", &[], &[], &[]), describe(b'P', "p"), sync()].concat());
    let cursor = calls.borrow()[0].cursor;
    // The implicit transaction ended at Sync: portal "p" is gone.
    let (out, _) = h.send(&[execute("p", 0), sync()].concat());
    assert_eq!(error_code(&out), "34000");
    h.send(&query("select 2"));
    assert_eq!(calls.borrow().last().unwrap().dropped, vec![cursor]);
    assert_eq!(calls.borrow().last().unwrap().mode, QueryMode::Simple);
}

#[test]
fn a_row_limit_suspends_the_portal_and_the_next_execute_resumes_it() {
    let (mut h, calls) = ready(false, |call| match call.mode {
        QueryMode::Execute { max_rows: 2 } if !call.resume => QueryOutcome { suspended: true, ..Default::default() },
        _ => completed(),
    });
    h.send(&query("begin"));
    let (out, _) = h.send(
        &[parse("", "select x", &[]), bind("c", "", &[], &[], &[]), execute("c", 2), execute("c", 2), sync()].concat(),
    );
    assert_eq!(tags(&out), "12Z");
    let calls = calls.borrow();
    assert_eq!(calls[1].mode, QueryMode::Execute { max_rows: 2 });
    assert!(!calls[1].resume);
    assert!(calls[2].resume);
    assert_eq!(calls[1].cursor, calls[2].cursor);
    // In a transaction the portal outlives Sync.
    drop(calls);
    let (out, _) = h.send(&[execute("c", 0), sync()].concat());
    assert_eq!(tags(&out), "Z");
}

#[test]
fn statements_are_described_by_on_describe_once_or_as_returning_nothing_without_it() {
    let (mut h, _) = ready(false, |_| completed());
    let (out, _) = h.send(&[parse("s", "select $1", &[]), describe(b'S', "s"), sync()].concat());
    assert_eq!(tags(&out), "1tnZ");
    let (_, body) = &messages(&out)[1];
    assert_eq!(body, &[0, 1, 0, 0, 0, 25], "an unknown parameter type is described as text");

    let (mut h, calls) = ready(true, |_| completed());
    let (out, _) = h.send(&[parse("s", "select $1", &[]), describe(b'S', "s"), describe(b'S', "s"), sync()].concat());
    assert_eq!(tags(&out), "1tTtTZ");
    assert_eq!(h.log.iter().filter(|l| l.starts_with("Describe")).count(), 1, "{:?}", h.log);
    // Bind decodes parameters with the types onDescribe gave.
    let seven = 7i32.to_be_bytes();
    h.send(&[bind("", "s", &[1], &[Some(&seven)], &[]), execute("", 0), sync()].concat());
    assert_eq!(*calls.borrow()[0].params, vec![Value::Number(7.0)]);
}

#[test]
fn empty_queries_and_closes_are_answered_without_js() {
    let (mut h, calls) = ready(false, |_| completed());
    let (out, _) = h.send(&query(" ; -- nothing\n"));
    assert_eq!(tags(&out), "IZ");
    let (out, _) = h.send(&[close(b'S', "none"), close(b'P', "none"), typed(b'H', &[]), sync()].concat());
    assert_eq!(tags(&out), "33Z");
    assert!(calls.borrow().is_empty());
}

#[test]
fn an_empty_prepared_statement_is_answered_as_postgresql_does() {
    let (mut h, calls) = ready(false, |_| completed());
    let pipeline =
        [parse("", " -- nothing", &[]), bind("", "", &[], &[], &[]), describe(b'P', ""), execute("", 0), sync()];
    let (out, _) = h.send(&pipeline.concat());
    assert_eq!(tags(&out), "12nIZ");
    assert!(calls.borrow().is_empty());
}

#[test]
fn a_fatal_error_from_on_query_ends_the_session() {
    let (mut h, _) = ready(false, |_| QueryOutcome {
        error: Some(PgError::fatal(SqlState::ADMIN_SHUTDOWN, "bye")),
        ..QueryOutcome::default()
    });
    let (out, closed) = h.send(&query("select 1"));
    assert_eq!(tags(&out), "E");
    assert!(closed);
}

#[test]
fn without_on_query_the_builtins_answer_as_before() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), |_, _| panic!("no hook"));
    h.send(&startup(&[("user", "u")]));
    let (out, _) = h.send(&[parse("", "select 1", &[]), sync()].concat());
    assert_eq!(error_code(&out), "0A000");
}

#[test]
fn a_failed_commit_still_ends_the_block_and_describe_is_refused_in_a_failed_one() {
    let (mut h, _) = ready(false, |call| match &*call.sql {
        "begin" => completed(),
        "commit" => QueryOutcome {
            error: Some(PgError::error(SqlState::INTERNAL_ERROR, "could not serialize")),
            ..QueryOutcome::default()
        },
        sql if sql.contains("fail") => {
            QueryOutcome { error: Some(PgError::error(SqlState::INTERNAL_ERROR, "boom")), ..QueryOutcome::default() }
        }
        _ => completed(),
    });
    h.send(&query("begin"));
    let (out, _) = h.send(&query("commit"));
    assert_eq!(tags(&out), "EZ");
    assert_eq!(ready_status(&out), b'I', "PostgreSQL ends the block after a failed COMMIT");
    h.send(&[query("begin"), parse("s", "select 1", &[]), query("select fail")].concat());
    let (out, _) = h.send(&[describe(b'S', "s"), sync()].concat());
    assert_eq!(error_code(&out), "25P02");
    assert_eq!(ready_status(&out), b'E');
}

#[test]
fn parameters_described_as_text_are_decoded_as_text() {
    let (mut h, calls) = ready(false, |_| completed());
    h.send(&[parse("s", "select $1", &[]), describe(b'S', "s"), sync()].concat());
    h.send(&[bind("", "s", &[1], &[Some(b"abc")], &[]), execute("", 0), sync()].concat());
    assert_eq!(*calls.borrow()[0].params, vec![Value::Text("abc".into())]);
    assert_eq!(*calls.borrow()[0].param_types, vec![25]);
}
