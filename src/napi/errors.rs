//! BackendError objects (pg-gateway's `sendError` argument, and whatever a hook threw, as
//! normalised by `index.js`) -> [`PgError`].

use napi_derive::napi;

use crate::protocol::{PgError, Severity, SqlState};

/// pg-gateway's `BackendError`: every field a string.
#[napi(object)]
pub struct BackendErrorInput {
    pub severity: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub position: Option<String>,
    pub internal_position: Option<String>,
    pub internal_query: Option<String>,
    #[napi(js_name = "where")]
    pub where_: Option<String>,
    pub schema: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    pub data_type: Option<String>,
    pub constraint: Option<String>,
    pub file: Option<String>,
    pub line: Option<String>,
    pub routine: Option<String>,
}

impl BackendErrorInput {
    /// `default_severity` applies when the object names none (or one we do not know).
    pub fn into_pg_error(self, default_severity: Severity) -> PgError {
        let severity = self.severity.as_deref().and_then(Severity::parse).unwrap_or(default_severity);
        let mut err = PgError::new(severity, SqlState::INTERNAL_ERROR, self.message.unwrap_or_default());
        if let Some(code) = self.code {
            err.code = code.into();
        }
        let optional = [
            (b'D', self.detail),
            (b'H', self.hint),
            (b'P', self.position),
            (b'p', self.internal_position),
            (b'q', self.internal_query),
            (b'W', self.where_),
            (b's', self.schema),
            (b't', self.table),
            (b'c', self.column),
            (b'd', self.data_type),
            (b'n', self.constraint),
            (b'F', self.file),
            (b'L', self.line),
            (b'R', self.routine),
        ];
        err.fields = optional.into_iter().filter_map(|(field, value)| Some((field, value?))).collect();
        err
    }
}
