'use strict';
// Session settings per client on one PGlite session. Each client has its own map of settings
// (its startup parameters, then what it SET); before a client's turn, PGlite's session is
// brought from the settings of the previous client to this one's, and after a turn that may
// have changed them they are read back.

const { identifier } = require('./wire.js');

/** Startup parameters that are not settings. */
const NOT_SETTINGS = new Set(['user', 'database', 'options', 'replication']);

/**
 * Statements that may change a setting: read the settings back after the turn. Comments are
 * taken out first (`/* x *\/ SET ...`); a DO block may SET anything.
 */
const SETS = /(^|;)\s*(set|reset|discard|do)\b|\bset_config\b/i;
const COMMENTS = /\/\*[\s\S]*?\*\/|--[^\n]*/g;

function maySet(sql) {
  return SETS.test(sql.includes('--') || sql.includes('/*') ? sql.replace(COMMENTS, ' ') : sql);
}

/**
 * What a client's settings start as: PGlite's own session settings, then its startup parameters,
 * and the user it logged in as (`current_user` and `session_user` are the client's, as on
 * PostgreSQL; PGlite's one session is started as postgres, a superuser, who may become anyone).
 */
function initialSettings(baseline, parameters) {
  const settings = new Map(baseline);
  for (const [name, value] of Object.entries(parameters ?? {})) {
    if (!NOT_SETTINGS.has(name) && typeof value === 'string') settings.set(name, value);
  }
  if (typeof parameters?.user === 'string') settings.set('session_authorization', parameters.user);
  return settings;
}

/**
 * A string literal that reads the same whatever `standard_conforming_strings` the previous
 * client left (an escape string: backslashes doubled, quotes doubled).
 */
const literal = (value) => `E'${String(value).replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/**
 * The SQL that brings PGlite's session from `current` to `wanted` (null when they agree): a
 * RESET for each setting only `current` has, a set_config for each that differs.
 */
function transition(current, wanted) {
  const statements = [];
  for (const name of current.keys()) {
    if (!wanted.has(name)) statements.push(`RESET ${identifier(name)}`);
  }
  const changes = [];
  for (const [name, value] of wanted) {
    // Qualified: the previous client's search_path may hold a set_config of its own.
    if (current.get(name) !== value) changes.push(`pg_catalog.set_config(${literal(name)}, ${literal(value)}, false)`);
  }
  if (changes.length > 0) statements.push(`SELECT ${changes.join(', ')}`);
  return statements.length > 0 ? statements.join('; ') : null;
}

/**
 * The query that reads the session's own settings back. Who the session is comes first, as
 * pg_settings hides it and as the settings are applied in this order: becoming another session
 * user resets the role.
 */
const READ_SETTINGS = `SELECT name, setting FROM (
  SELECT 0 AS k, 'session_authorization' AS name, session_user::text AS setting
  UNION ALL SELECT 1, 'role', pg_catalog.current_setting('role')
  UNION ALL SELECT 2, name, setting FROM pg_catalog.pg_settings
    WHERE source = 'session' AND name NOT IN ('session_authorization', 'role')
) s ORDER BY k, name`;

/** The settings PostgreSQL reports with ParameterStatus that a client's own settings decide. */
const READ_REPORTED = `SELECT name, setting FROM pg_catalog.pg_settings WHERE name IN ('client_encoding', 'DateStyle',
  'IntervalStyle', 'TimeZone', 'standard_conforming_strings', 'application_name', 'is_superuser', 'search_path',
  'default_transaction_read_only') UNION ALL SELECT 'session_authorization', session_user::text`;

module.exports = { initialSettings, transition, READ_SETTINGS, READ_REPORTED, maySet };
