//! The query API (`onQuery`): the session speaks the simple and the extended query protocol
//! itself, as PostgreSQL does — prepared statements and portals per connection, Parse / Bind /
//! Describe / Execute / Close / Sync / Flush, errors that skip to Sync, and the transaction
//! status of ReadyForQuery — and asks JS only to run a statement (`onQuery`) or to describe
//! one (`onDescribe`).
//!
//! What a statement returns is written by JS with the encoders of the binding (rows cross in
//! batches and are encoded in Rust), straight into the connection's output while the hook
//! runs, so results stream. A portal's result stays in JS under a cursor id until the portal
//! is destroyed; the session tells JS which cursors it dropped with its next call.

mod catalog;
mod sql;

use std::collections::HashMap;
use std::sync::Arc;

use super::{HookRequest, Phase, Session};
use crate::protocol::backend::{self, ColumnDescription, TransactionStatus};
use crate::protocol::frontend::{FrontendMessage, Target};
use crate::protocol::types::{self, PgType, Value};
use crate::protocol::{PgError, SqlState};
use catalog::Builtin;
pub use sql::{command_word, split_statements};
use sql::{exits_failed_transaction, max_parameter, plain_statement, tx_effect, TxEffect};

/// PostgreSQL's limit on the parameters of one statement.
const MAX_PARAMETERS: usize = 65_535;

/// How a statement is to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryMode {
    /// A simple Query: RowDescription, rows and CommandComplete for each result.
    Simple,
    /// Describe of a portal: run it, keep the result, send its RowDescription (or NoData).
    Describe,
    /// Execute of a portal: rows (at most `max_rows`, 0 for all), then CommandComplete or
    /// PortalSuspended.
    Execute { max_rows: u32 },
    /// Describe of a portal with the Execute (no row limit) that came right behind it, in one
    /// call: RowDescription (or NoData), the rows, CommandComplete. node-postgres and pgbench
    /// send exactly this pair for every statement.
    DescribeExecute,
}

/// `onQuery` for one statement (or, for a simple Query, one query string).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryCall {
    pub sql: Arc<str>,
    pub params: Arc<Vec<Value>>,
    pub param_types: Arc<Vec<u32>>,
    /// Bind's result format codes (0 text, 1 binary): none, one for all, or one per column.
    pub result_formats: Arc<Vec<i16>>,
    pub mode: QueryMode,
    /// The portal's cursor id (0 for a simple Query, whose result is not kept).
    pub cursor: u32,
    /// JS already holds this cursor's result (an earlier Describe or a suspended Execute).
    pub resume: bool,
    /// Cursors of portals destroyed since the last call: JS lets go of their results.
    pub dropped: Vec<u32>,
    /// The column types the client was told by a Describe of the statement (empty: no rows),
    /// when it did not describe the portal: the result must match, or the client misreads it.
    pub expected: Option<Arc<Vec<u32>>>,
}

impl Eq for QueryCall {}

/// `onDescribe` for a prepared statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribeCall {
    pub sql: Arc<str>,
    pub param_types: Vec<u32>,
}

/// What a statement's run came to.
#[derive(Debug, Default)]
pub struct QueryOutcome {
    /// How many results completed (their CommandComplete is in `data` or was written by JS).
    pub completed: usize,
    /// Execute stopped at its row limit (PortalSuspended was sent).
    pub suspended: bool,
    /// The statement failed after the `completed` results.
    pub error: Option<PgError>,
    /// The end of the result as JS encoded it (what it did not write itself while the hook
    /// ran): sent before anything the session answers, in the same write.
    pub data: Option<Vec<u8>>,
}

/// What `onDescribe` said of a statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description {
    pub param_types: Vec<u32>,
    /// Format codes are 0: a statement's formats are not known before Bind.
    pub columns: Vec<ColumnDescription>,
}

struct Statement {
    /// The column types a Describe of the statement told the client (empty: NoData).
    told: Option<Arc<Vec<u32>>>,
    sql: Arc<str>,
    /// A catalog query the session answers itself.
    builtin: Option<Builtin>,
    param_types: Vec<u32>,
    described: Option<Arc<Description>>,
}

struct Portal {
    /// What a Describe of its statement told the client, until the portal is described itself.
    expected: Option<Arc<Vec<u32>>>,
    sql: Arc<str>,
    builtin: Option<Builtin>,
    params: Arc<Vec<Value>>,
    param_types: Arc<Vec<u32>>,
    result_formats: Arc<Vec<i16>>,
    cursor: u32,
    /// JS holds a result for this cursor.
    used: bool,
}

/// What the hook now running was asked for.
enum Running {
    Simple { effects: Vec<TxEffect> },
    Execute { portal: String },
    DescribePortal { portal: String },
    DescribeStatement { name: String },
}

/// Prepared statements or portals by name. The unnamed one, which most clients use for every
/// statement, has a slot of its own: no hashing and no key to allocate.
struct Named<T> {
    unnamed: Option<T>,
    named: HashMap<String, T>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Self { unnamed: None, named: HashMap::new() }
    }
}

impl<T> Named<T> {
    fn get(&self, name: &str) -> Option<&T> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        if name.is_empty() {
            self.unnamed.as_mut()
        } else {
            self.named.get_mut(name)
        }
    }

    fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn insert(&mut self, name: &str, value: T) {
        if name.is_empty() {
            self.unnamed = Some(value);
        } else {
            self.named.insert(name.to_string(), value);
        }
    }

    fn remove(&mut self, name: &str) -> Option<T> {
        if name.is_empty() {
            self.unnamed.take()
        } else {
            self.named.remove(name)
        }
    }

    fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.unnamed.take().into_iter().chain(self.named.drain().map(|(_, value)| value))
    }
}

/// Statements, portals and cursors of one connection.
#[derive(Default)]
pub struct QueryState {
    statements: Named<Statement>,
    portals: Named<Portal>,
    last_cursor: u32,
    dropped: Vec<u32>,
    running: Option<Running>,
}

impl QueryState {
    fn next_cursor(&mut self) -> u32 {
        self.last_cursor = self.last_cursor.wrapping_add(1).max(1);
        self.last_cursor
    }

    fn drop_portal(&mut self, name: &str) {
        if let Some(portal) = self.portals.remove(name) {
            if portal.used {
                self.dropped.push(portal.cursor);
            }
        }
    }

    /// The end of a transaction destroys its portals.
    fn drop_all_portals(&mut self) {
        for portal in self.portals.drain() {
            if portal.used {
                self.dropped.push(portal.cursor);
            }
        }
    }
}

/// Empty lists shared by every simple Query: a clone is a count increment, not an allocation.
fn empty_values() -> Arc<Vec<Value>> {
    static EMPTY: std::sync::OnceLock<Arc<Vec<Value>>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Arc::default).clone()
}

fn empty_types() -> Arc<Vec<u32>> {
    static EMPTY: std::sync::OnceLock<Arc<Vec<u32>>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Arc::default).clone()
}

fn empty_formats() -> Arc<Vec<i16>> {
    static EMPTY: std::sync::OnceLock<Arc<Vec<i16>>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Arc::default).clone()
}

fn aborted_transaction() -> PgError {
    PgError::error(
        SqlState::IN_FAILED_SQL_TRANSACTION,
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

fn protocol_violation(message: String) -> PgError {
    PgError::error(SqlState::PROTOCOL_VIOLATION, message)
}

fn statement_label(name: &str) -> String {
    if name.is_empty() {
        "unnamed prepared statement".into()
    } else {
        format!("prepared statement \"{name}\"")
    }
}

impl Session {
    fn queries(&mut self) -> &mut QueryState {
        self.queries.get_or_insert_with(Default::default)
    }

    fn transaction(&self) -> TransactionStatus {
        self.state.transaction_status
    }

    fn set_transaction(&mut self, status: TransactionStatus) {
        if self.state.transaction_status != status {
            self.state.transaction_status = status;
            self.state_version += 1;
        }
    }

    fn apply_effect(&mut self, effect: TxEffect) {
        match effect {
            TxEffect::Begin if self.transaction() == TransactionStatus::Idle => {
                self.set_transaction(TransactionStatus::InTransaction)
            }
            TxEffect::End => {
                self.set_transaction(TransactionStatus::Idle);
                self.queries().drop_all_portals();
            }
            TxEffect::RollbackToSavepoint if self.transaction() == TransactionStatus::Failed => {
                self.set_transaction(TransactionStatus::InTransaction)
            }
            _ => {}
        }
    }

    /// A statement with `effect` failed: a failed COMMIT or ROLLBACK still ends the block
    /// (PostgreSQL answers `Z I` after it); any other error fails the block.
    fn statement_failed(&mut self, effect: TxEffect) {
        if effect == TxEffect::End {
            self.apply_effect(TxEffect::End);
        } else {
            self.transaction_failed();
        }
    }

    /// An error inside a transaction block fails it until it ends.
    pub(super) fn transaction_failed(&mut self) {
        if self.transaction() == TransactionStatus::InTransaction {
            self.set_transaction(TransactionStatus::Failed);
        }
    }

    /// An ERROR for an extended-protocol message: skip to Sync.
    fn extended_error(&mut self, err: PgError, tag: u8) {
        self.error_then_recover(&err, Some(tag));
    }

    /// Handles a query message when `onQuery` exists; false for messages it leaves to the
    /// built-ins (Sync in skip mode, Terminate, COPY, FunctionCall ...).
    pub(super) fn query_message(&mut self, message: &FrontendMessage) -> bool {
        match message {
            FrontendMessage::Query { sql } => self.simple_query(sql),
            FrontendMessage::Parse { name, sql, param_types } => self.parse(name, sql, param_types),
            FrontendMessage::Bind { portal, statement, param_formats, params, result_formats } => {
                self.bind(portal, statement, param_formats, params, result_formats)
            }
            FrontendMessage::Describe { target: Target::Statement, name } => self.describe_statement(name),
            FrontendMessage::Describe { target: Target::Portal, name } => self.describe_portal(name),
            FrontendMessage::Execute { portal, max_rows } => self.execute(portal, *max_rows),
            FrontendMessage::Close { target, name } => {
                let queries = self.queries();
                match target {
                    Target::Statement => {
                        queries.statements.remove(name);
                    }
                    Target::Portal => queries.drop_portal(name),
                }
                backend::empty(&mut self.output, backend::CLOSE_COMPLETE);
            }
            FrontendMessage::Sync => self.sync(),
            // Everything is written as soon as it is made: nothing to flush.
            FrontendMessage::Flush => {}
            _ => return false,
        }
        true
    }

    /// Sync: the end of an implicit transaction destroys its portals; then ReadyForQuery.
    pub(super) fn sync(&mut self) {
        if let Phase::Ready { skip_to_sync, .. } = &mut self.phase {
            *skip_to_sync = false;
        }
        if self.transaction() == TransactionStatus::Idle {
            if let Some(queries) = self.queries.as_mut() {
                queries.drop_all_portals();
            }
        }
        backend::ready_for_query(&mut self.output, self.state.transaction_status);
    }

    fn simple_query(&mut self, sql: &str) {
        let one;
        let many;
        let statements: &[&str] = match plain_statement(sql) {
            Some(statement) => {
                one = [statement];
                &one
            }
            None => {
                many = split_statements(sql);
                &many
            }
        };
        let queries = self.queries();
        // As in PostgreSQL, a simple Query replaces the unnamed statement and portal.
        queries.statements.remove("");
        queries.drop_portal("");
        if let (1, Some(builtin)) = (statements.len(), Builtin::recognise(sql)) {
            backend::row_description(&mut self.output, &builtin.columns(&[]));
            builtin.write_rows(&mut self.output, &[]);
            backend::ready_for_query(&mut self.output, self.state.transaction_status);
            return;
        }
        if statements.is_empty() {
            backend::empty(&mut self.output, backend::EMPTY_QUERY_RESPONSE);
            backend::ready_for_query(&mut self.output, self.state.transaction_status);
            return;
        }
        if self.transaction() == TransactionStatus::Failed && !exits_failed_transaction(statements[0]) {
            backend::error_response(&mut self.output, &aborted_transaction());
            backend::ready_for_query(&mut self.output, self.state.transaction_status);
            return;
        }
        // Up to the last statement that touches the transaction: for most queries, none (and
        // no Vec); `query_done` takes a missing effect for `TxEffect::None`.
        let last = statements.iter().rposition(|s| tx_effect(s) != TxEffect::None);
        let effects = last.map_or_else(Vec::new, |last| statements[..=last].iter().map(|s| tx_effect(s)).collect());
        let queries = self.queries();
        queries.running = Some(Running::Simple { effects });
        let dropped = std::mem::take(&mut queries.dropped);
        self.queued = Some(HookRequest::Query(Box::new(QueryCall {
            sql: sql.into(),
            params: empty_values(),
            param_types: empty_types(),
            result_formats: empty_formats(),
            mode: QueryMode::Simple,
            cursor: 0,
            resume: false,
            dropped,
            expected: None,
        })));
    }

    fn parse(&mut self, name: &str, sql: &str, declared: &[i32]) {
        if self.transaction() == TransactionStatus::Failed && !exits_failed_transaction(sql) {
            return self.extended_error(aborted_transaction(), b'P');
        }
        if !name.is_empty() && self.queries().statements.contains_key(name) {
            let err = PgError::error(
                SqlState::DUPLICATE_PREPARED_STATEMENT,
                format!("prepared statement \"{name}\" already exists"),
            );
            return self.extended_error(err, b'P');
        }
        if plain_statement(sql).is_none() && split_statements(sql).len() > 1 {
            let err =
                PgError::error(SqlState::SYNTAX_ERROR, "cannot insert multiple commands into a prepared statement");
            return self.extended_error(err, b'P');
        }
        let count = declared.len().max(max_parameter(sql));
        if count > MAX_PARAMETERS {
            let err = protocol_violation(format!("too many parameters: {count} (at most {MAX_PARAMETERS})"));
            return self.extended_error(err, b'P');
        }
        let mut param_types: Vec<u32> = declared.iter().map(|&t| t as u32).collect();
        param_types.resize(count, 0);
        let statement =
            Statement { told: None, sql: sql.into(), builtin: Builtin::recognise(sql), param_types, described: None };
        self.queries().statements.insert(name, statement);
        backend::empty(&mut self.output, backend::PARSE_COMPLETE);
    }

    fn bind(
        &mut self,
        portal: &str,
        statement: &str,
        param_formats: &[i16],
        params: &[Option<&[u8]>],
        result_formats: &[i16],
    ) {
        let Some(found) = self.queries().statements.get(statement) else {
            let err = PgError::error(
                SqlState::INVALID_SQL_STATEMENT_NAME,
                format!("{} does not exist", statement_label(statement)),
            );
            return self.extended_error(err, b'B');
        };
        let (sql, param_types, builtin, told) =
            (found.sql.clone(), found.param_types.clone(), found.builtin, found.told.clone());
        if self.transaction() == TransactionStatus::Failed && !exits_failed_transaction(&sql) {
            return self.extended_error(aborted_transaction(), b'B');
        }
        if param_formats.len() > 1 && param_formats.len() != params.len() {
            let err = protocol_violation(format!(
                "bind message has {} parameter formats but {} parameters",
                param_formats.len(),
                params.len()
            ));
            return self.extended_error(err, b'B');
        }
        if params.len() != param_types.len() {
            let err = protocol_violation(format!(
                "bind message supplies {} parameters, but {} requires {}",
                params.len(),
                statement_label(statement),
                param_types.len()
            ));
            return self.extended_error(err, b'B');
        }
        if let Some(bad) = param_formats.iter().chain(result_formats).find(|f| !matches!(f, 0 | 1)) {
            let err = PgError::error(SqlState::INVALID_PARAMETER_VALUE, format!("unsupported format code: {bad}"));
            return self.extended_error(err, b'B');
        }
        if !portal.is_empty() && self.queries().portals.contains_key(portal) {
            let err = PgError::error(SqlState::DUPLICATE_CURSOR, format!("portal \"{portal}\" already exists"));
            return self.extended_error(err, b'B');
        }
        let mut values = Vec::with_capacity(params.len());
        for (i, param) in params.iter().enumerate() {
            let binary = match param_formats {
                [] => false,
                [one] => *one == 1,
                many => many[i] == 1,
            };
            let value = match param {
                None => Value::Null,
                Some(bytes) => match types::decode(PgType::by_oid(param_types[i]), binary, bytes, i + 1) {
                    Ok(value) => value,
                    Err(err) => return self.extended_error(err, b'B'),
                },
            };
            values.push(value);
        }
        let queries = self.queries();
        queries.drop_portal(portal);
        let cursor = queries.next_cursor();
        queries.portals.insert(
            portal,
            Portal {
                expected: told,
                sql,
                builtin,
                params: if values.is_empty() { empty_values() } else { Arc::new(values) },
                param_types: if param_types.is_empty() { empty_types() } else { Arc::new(param_types) },
                // One 0 means text for every column, as none does.
                result_formats: if matches!(result_formats, [] | [0]) {
                    empty_formats()
                } else {
                    Arc::new(result_formats.to_vec())
                },
                cursor,
                used: false,
            },
        );
        backend::empty(&mut self.output, backend::BIND_COMPLETE);
    }

    fn describe_statement(&mut self, name: &str) {
        let failed = self.transaction() == TransactionStatus::Failed;
        let on_describe = self.config.hooks.on_describe;
        let Some(statement) = self.queries().statements.get(name) else {
            if failed {
                return self.extended_error(aborted_transaction(), b'D');
            }
            let err = PgError::error(
                SqlState::INVALID_SQL_STATEMENT_NAME,
                format!("{} does not exist", statement_label(name)),
            );
            return self.extended_error(err, b'D');
        };
        // PostgreSQL refuses to describe a statement that returns rows in a failed block; the
        // ones that end the block (COMMIT, ROLLBACK) return none and are described.
        if failed && !exits_failed_transaction(&statement.sql) {
            return self.extended_error(aborted_transaction(), b'D');
        }
        if let Some(described) = statement.described.clone() {
            return self.describe_statement_as(name, &described);
        }
        if let Some(builtin) = statement.builtin {
            let description = Description { param_types: statement.param_types.clone(), columns: builtin.columns(&[]) };
            return self.write_description(&description);
        }
        if !on_describe {
            // Nothing can say what the statement returns without running it: parameters of
            // unknown type are text (and Bind decodes them so from now on), and the statement
            // is described as returning no rows.
            let param_types: Vec<u32> =
                statement.param_types.iter().map(|&t| if t == 0 { types::registry::TEXT.oid } else { t }).collect();
            if let Some(statement) = self.queries().statements.get_mut(name) {
                statement.param_types = param_types.clone();
            }
            let description = Description { param_types, columns: Vec::new() };
            return self.describe_statement_as(name, &description);
        }
        let call = DescribeCall { sql: statement.sql.clone(), param_types: statement.param_types.clone() };
        self.queries().running = Some(Running::DescribeStatement { name: name.to_string() });
        self.queued = Some(HookRequest::Describe(Box::new(call)));
    }

    fn write_description(&mut self, description: &Description) {
        backend::parameter_description(&mut self.output, &description.param_types);
        if description.columns.is_empty() {
            backend::empty(&mut self.output, backend::NO_DATA);
        } else {
            backend::row_description(&mut self.output, &description.columns);
        }
    }

    /// `onDescribe` answered for the statement of `Running::DescribeStatement`.
    pub(super) fn describe_done(&mut self, result: Result<Description, PgError>) {
        let Some(Running::DescribeStatement { name }) = self.queries().running.take() else { return };
        let mut description = match result {
            Ok(description) => description,
            Err(err) => return self.query_error(err, b'D'),
        };
        let Some(statement) = self.queries().statements.get_mut(&name) else { return };
        // Types the client declared stand; `onDescribe` fills in the ones it left open.
        let mut param_types = statement.param_types.clone();
        for (i, t) in param_types.iter_mut().enumerate() {
            if *t == 0 {
                *t = description.param_types.get(i).copied().filter(|&t| t != 0).unwrap_or(types::registry::TEXT.oid);
            }
        }
        statement.param_types = param_types.clone();
        description.param_types = param_types;
        for column in &mut description.columns {
            column.format = 0;
        }
        let description = Arc::new(description);
        statement.described = Some(description.clone());
        self.describe_statement_as(&name, &description);
    }

    /// Answers a Describe of statement `name` with `description`, and remembers the column
    /// types the client now expects from its portals.
    fn describe_statement_as(&mut self, name: &str, description: &Description) {
        if let Some(statement) = self.queries().statements.get_mut(name) {
            statement.told = Some(Arc::new(description.columns.iter().map(|c| c.type_oid).collect()));
        }
        self.write_description(description);
    }

    fn portal_call(&mut self, name: &str, mode: QueryMode, tag: u8) -> Option<QueryCall> {
        let queries = self.queries();
        let Some(portal) = queries.portals.get(name) else {
            let err = PgError::error(SqlState::INVALID_CURSOR_NAME, format!("portal \"{name}\" does not exist"));
            self.extended_error(err, tag);
            return None;
        };
        let call = QueryCall {
            sql: portal.sql.clone(),
            params: portal.params.clone(),
            param_types: portal.param_types.clone(),
            result_formats: portal.result_formats.clone(),
            mode,
            cursor: portal.cursor,
            resume: portal.used,
            dropped: std::mem::take(&mut queries.dropped),
            // A Describe of the portal sends its real columns: nothing to hold the result to.
            expected: if matches!(mode, QueryMode::Execute { .. }) { portal.expected.clone() } else { None },
        };
        Some(call)
    }

    /// A portal of a built-in catalog query, or of an empty statement: answered here, `onQuery`
    /// never sees it (PostgreSQL answers an empty statement with NoData / EmptyQueryResponse).
    fn builtin_portal(&mut self, name: &str, describe: bool) -> bool {
        let Some(portal) = self.queries().portals.get(name) else { return false };
        if plain_statement(&portal.sql).is_none() && split_statements(&portal.sql).is_empty() {
            let tag = if describe { backend::NO_DATA } else { backend::EMPTY_QUERY_RESPONSE };
            backend::empty(&mut self.output, tag);
            return true;
        }
        let Some(builtin) = portal.builtin else { return false };
        let formats = portal.result_formats.clone();
        if describe {
            backend::row_description(&mut self.output, &builtin.columns(&formats));
        } else {
            builtin.write_rows(&mut self.output, &formats);
        }
        true
    }

    fn describe_portal(&mut self, name: &str) {
        if self.transaction() == TransactionStatus::Failed
            && !self.queries().portals.get(name).is_some_and(|p| exits_failed_transaction(&p.sql))
        {
            return self.extended_error(aborted_transaction(), b'D');
        }
        if self.builtin_portal(name, true) {
            return;
        }
        let with_execute = self.execute_follows(name);
        let mode = if with_execute { QueryMode::DescribeExecute } else { QueryMode::Describe };
        if let Some(call) = self.portal_call(name, mode, b'D') {
            if let Some(portal) = self.queries().portals.get_mut(name) {
                portal.expected = None;
            }
            let portal = name.to_string();
            self.queries().running =
                Some(if with_execute { Running::Execute { portal } } else { Running::DescribePortal { portal } });
            self.queued = Some(HookRequest::Query(Box::new(call)));
        }
    }

    /// Whether the next message, already received, is an Execute of portal `name` without a
    /// row limit; if so it is taken off the input, to run with the Describe in one call. Not
    /// when `onMessage` exists: it must see that Execute first.
    fn execute_follows(&mut self, name: &str) -> bool {
        if self.config.hooks.on_message {
            return false;
        }
        let limits = self.config.limits;
        let Ok(Some(len)) = crate::protocol::frame::typed_frame_len(&self.input, |tag| limits.max_len(tag, true))
        else {
            return false;
        };
        let follows = self.input.first() == Some(&b'E')
            && matches!(
                FrontendMessage::decode(&self.input[..len]),
                Ok(FrontendMessage::Execute { portal, max_rows }) if portal == name && max_rows <= 0
            );
        if follows {
            bytes::Buf::advance(&mut self.input, len);
        }
        follows
    }

    fn execute(&mut self, name: &str, max_rows: i32) {
        if self.builtin_portal(name, false) {
            return;
        }
        let mode = QueryMode::Execute { max_rows: max_rows.max(0) as u32 };
        let Some(call) = self.portal_call(name, mode, b'E') else { return };
        if self.transaction() == TransactionStatus::Failed && !exits_failed_transaction(&call.sql) {
            // The cursors taken for this call go back to wait for the next one.
            self.queries().dropped.extend(call.dropped);
            return self.extended_error(aborted_transaction(), b'E');
        }
        self.queries().running = Some(Running::Execute { portal: name.to_string() });
        self.queued = Some(HookRequest::Query(Box::new(call)));
    }

    /// `onQuery` finished (or failed) for what `running` says.
    pub(super) fn query_done(&mut self, outcome: QueryOutcome) {
        let Some(running) = self.queries().running.take() else { return };
        if let Some(data) = &outcome.data {
            self.output.extend_from_slice(data);
        }
        match running {
            Running::Simple { effects } => {
                for i in 0..outcome.completed {
                    self.apply_effect(effects.get(i).copied().unwrap_or(TxEffect::None));
                }
                match outcome.error {
                    Some(err) if err.severity.ends_session() => self.fail(err),
                    Some(err) => {
                        backend::error_response(&mut self.output, &err);
                        let failed = effects.get(outcome.completed).copied().unwrap_or(TxEffect::None);
                        self.statement_failed(failed);
                        backend::ready_for_query(&mut self.output, self.state.transaction_status);
                    }
                    None => backend::ready_for_query(&mut self.output, self.state.transaction_status),
                }
            }
            Running::Execute { portal } | Running::DescribePortal { portal } => {
                let effect = self.queries().portals.get(&portal).map(|p| tx_effect(&p.sql));
                if let Some(p) = self.queries().portals.get_mut(&portal) {
                    p.used = true;
                }
                if outcome.completed > 0 {
                    self.apply_effect(effect.unwrap_or(TxEffect::None));
                }
                if let Some(err) = outcome.error {
                    self.query_error(err, b'E');
                    // A COMMIT or ROLLBACK that failed still ended its block, as in PostgreSQL.
                    if outcome.completed == 0 && effect == Some(TxEffect::End) {
                        self.apply_effect(TxEffect::End);
                    }
                }
            }
            Running::DescribeStatement { .. } => {}
        }
    }

    fn query_error(&mut self, err: PgError, tag: u8) {
        if err.severity.ends_session() {
            return self.fail(err);
        }
        let err = PgError { severity: crate::protocol::Severity::Error, ..err };
        self.extended_error(err, tag);
    }
}
