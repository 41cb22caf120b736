//! What the session must know about SQL text without parsing SQL: where top-level statements
//! end, how many `$n` parameters a statement uses, and which statements open or end a
//! transaction. The scanner skips quoted strings, quoted identifiers, comments and
//! dollar-quoted strings, so a `;` or `$1` inside them does not count.

/// What a statement does to the transaction status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxEffect {
    None,
    /// BEGIN, START TRANSACTION.
    Begin,
    /// COMMIT, END, ROLLBACK, ABORT (and PREPARE TRANSACTION): the transaction is over.
    End,
    /// ROLLBACK TO SAVEPOINT: a failed transaction is usable again.
    RollbackToSavepoint,
}

/// Calls `on_code(i)` for each byte index outside quotes and comments; `on_code` returns how
/// many bytes to skip beyond the current one.
fn scan(sql: &str, mut on_code: impl FnMut(usize) -> usize) {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let quote = b[i];
                // E'...' strings take backslash escapes (`E'it\'s'`): a backslash hides the
                // next byte. Only when the E starts a token (`some_e'x'` is not one).
                let escapes = quote == b'\''
                    && i > 0
                    && matches!(b[i - 1], b'e' | b'E')
                    && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'_'));
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == quote {
                        // A doubled quote is an escaped one.
                        if b.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Block comments nest in PostgreSQL.
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'$' if dollar_tag(b, i).is_some() => {
                let tag_len = dollar_tag(b, i).unwrap_or(1);
                let tag = &b[i..i + tag_len];
                i += tag_len;
                while i < b.len() && !b[i..].starts_with(tag) {
                    i += 1;
                }
                i += tag_len;
            }
            _ => {
                i += 1 + on_code(i);
            }
        }
    }
}

/// The length of a dollar-quote opening tag (`$$`, `$tag$`) at `i`, if one starts there.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    // `$1` is a parameter, and a `$` inside an identifier (`a$b`) opens nothing.
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
        return None;
    }
    let mut j = i + 1;
    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1 - i)
}

/// The one statement of `sql`, trimmed, when it plainly holds one: no quotes, comments, dollar
/// signs or semicolons but one at its end. The common case, without [`split_statements`]' scan
/// and Vec; `None` says nothing (split it).
pub fn plain_statement(sql: &str) -> Option<&str> {
    let trimmed = sql.trim_end();
    let body = trimmed.strip_suffix(';').unwrap_or(trimmed).trim();
    let plain = !body.is_empty() && !body.bytes().any(|b| matches!(b, b'\'' | b'"' | b'-' | b'/' | b'$' | b';'));
    plain.then_some(body)
}

/// The top-level statements of a simple Query, trimmed, empty ones left out.
pub fn split_statements<'a>(sql: &'a str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut take = |end: usize, out: &mut Vec<&'a str>| {
        let statement = sql[start..end].trim();
        if !statement.is_empty() && !is_only_comments(statement) {
            out.push(statement);
        }
        start = (end + 1).min(sql.len());
    };
    scan(sql, |i| {
        if sql.as_bytes()[i] == b';' {
            take(i, &mut out);
        }
        0
    });
    take(sql.len(), &mut out);
    out
}

fn is_only_comments(statement: &str) -> bool {
    let mut code = false;
    scan(statement, |i| {
        if !statement.as_bytes()[i].is_ascii_whitespace() {
            code = true;
        }
        0
    });
    !code
}

/// The highest `$n` a statement uses (0 for none).
pub fn max_parameter(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut max = 0usize;
    scan(sql, |i| {
        if b[i] != b'$' || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) {
            return 0;
        }
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            let n = sql[i + 1..i + 1 + digits].parse::<usize>().unwrap_or(usize::MAX);
            max = max.max(n);
        }
        digits
    });
    max
}

/// The first (up to) four keywords of a statement, as slices of it (comments skipped). Runs
/// on every statement: no allocation.
fn keywords(statement: &str) -> [&str; 4] {
    let mut words = [""; 4];
    let mut count = 0;
    let b = statement.as_bytes();
    let mut start = usize::MAX;
    let mut end = 0;
    scan(statement, |i| {
        if count >= words.len() {
            // Done: skip the rest of the statement.
            return b.len();
        }
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            if start != usize::MAX && end != i {
                // A gap (a comment) ended the word before.
                words[count] = &statement[start..end];
                count += 1;
                start = usize::MAX;
            }
            if start == usize::MAX {
                start = i;
            }
            end = i + 1;
        } else if start != usize::MAX {
            words[count] = &statement[start..end];
            count += 1;
            start = usize::MAX;
        }
        0
    });
    if start != usize::MAX && count < words.len() {
        words[count] = &statement[start..end];
    }
    words
}

/// The command word of a statement (`SELECT`, `INSERT`, ...), for default command tags.
pub fn command_word(statement: &str) -> String {
    keywords(statement)[0].to_ascii_uppercase()
}

pub fn tx_effect(statement: &str) -> TxEffect {
    let words = keywords(statement);
    // Most statements are none of these: no upper-casing for them.
    const COMMANDS: [&str; 7] = ["BEGIN", "START", "COMMIT", "END", "PREPARE", "ROLLBACK", "ABORT"];
    if !COMMANDS.iter().any(|c| c.eq_ignore_ascii_case(words[0])) {
        return TxEffect::None;
    }
    // Upper-cased on the stack: the keywords that matter are short (longer words match none).
    let mut buffers = [[0u8; 12]; 4];
    for (buf, w) in buffers.iter_mut().zip(words) {
        if w.len() <= buf.len() {
            buf[..w.len()].copy_from_slice(w.as_bytes());
            buf[..w.len()].make_ascii_uppercase();
        }
    }
    let word = |i: usize| {
        let w = words[i];
        if w.len() <= 12 {
            std::str::from_utf8(&buffers[i][..w.len()]).unwrap_or("")
        } else {
            ""
        }
    };
    match word(0) {
        "BEGIN" => TxEffect::Begin,
        "START" if word(1) == "TRANSACTION" => TxEffect::Begin,
        // AND CHAIN starts the next block at once: the status stays T.
        "COMMIT" | "END" if word(1) == "AND" && word(2) == "CHAIN" => TxEffect::None,
        "COMMIT" | "END" if word(1) != "PREPARED" => TxEffect::End,
        "PREPARE" if word(1) == "TRANSACTION" => TxEffect::End,
        "ROLLBACK" | "ABORT" => {
            let rest: Vec<&str> = (1..4).map(word).filter(|w| *w != "WORK" && *w != "TRANSACTION").collect();
            match rest.first().copied() {
                Some("TO") => TxEffect::RollbackToSavepoint,
                Some("PREPARED") => TxEffect::None,
                Some("AND") if rest.get(1) == Some(&"CHAIN") => TxEffect::None,
                _ => TxEffect::End,
            }
        }
        _ => TxEffect::None,
    }
}

/// Whether a statement may run in a failed transaction (PostgreSQL's `IsTransactionExitStmt`).
pub fn exits_failed_transaction(statement: &str) -> bool {
    matches!(tx_effect(statement), TxEffect::End | TxEffect::RollbackToSavepoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_top_level_semicolons() {
        assert_eq!(split_statements("select 1; select 2;"), vec!["select 1", "select 2"]);
        // The plain case agrees with the scan, and anything else is left to it.
        for sql in [
            "select 1",
            "SELECT 1;",
            "  select 1 ;  \n",
            "begin",
            "select 1;;",
            "select ';'",
            "select 1 -- x",
            "select $1",
            " ; ",
        ] {
            match plain_statement(sql) {
                Some(one) => assert_eq!(split_statements(sql), vec![one], "{sql:?}"),
                None => assert!(
                    sql.contains([';', '\'', '-', '$']) || sql.trim().is_empty() || sql.trim() == ";",
                    "{sql:?}"
                ),
            }
        }
        assert_eq!(plain_statement("SELECT 1;"), Some("SELECT 1"));
        assert_eq!(plain_statement("select 1;;"), None);
        assert_eq!(
            split_statements("select ';'; select $$a;b$$; select $x$;$x$"),
            vec!["select ';'", "select $$a;b$$", "select $x$;$x$"]
        );
        assert_eq!(
            split_statements("select 1 -- ;\n; /* ; /* ; */ */ select 2"),
            vec!["select 1 -- ;", "/* ; /* ; */ */ select 2"]
        );
        assert_eq!(split_statements(" ; ;\n"), Vec::<&str>::new());
        assert_eq!(split_statements("-- nothing"), Vec::<&str>::new());
        assert_eq!(split_statements("select 'it''s;'"), vec!["select 'it''s;'"]);
        assert_eq!(split_statements("select E'it\\'s; $1'; select 2"), vec!["select E'it\\'s; $1'", "select 2"]);
        assert_eq!(split_statements("select e'a\\\\'; select 2").len(), 2);
        assert_eq!(split_statements("select 'a\\'; select 2").len(), 2, "no escapes outside E''");
    }

    #[test]
    fn parameters_are_counted_outside_quotes() {
        assert_eq!(max_parameter("select $1, $2"), 2);
        assert_eq!(max_parameter("select '$3', \"$4\", $$ $5 $$, $1 -- $6"), 1);
        assert_eq!(max_parameter("select a$1 from t where x = $10"), 10);
        assert_eq!(max_parameter("select 1"), 0);
    }

    #[test]
    fn transaction_commands() {
        assert_eq!(tx_effect("begin"), TxEffect::Begin);
        assert_eq!(tx_effect("BEGIN ISOLATION LEVEL SERIALIZABLE"), TxEffect::Begin);
        assert_eq!(tx_effect("start transaction read only"), TxEffect::Begin);
        assert_eq!(tx_effect("/* c */ commit"), TxEffect::End);
        assert_eq!(tx_effect("end"), TxEffect::End);
        assert_eq!(tx_effect("abort"), TxEffect::End);
        assert_eq!(tx_effect("rollback"), TxEffect::End);
        assert_eq!(tx_effect("ROLLBACK TO SAVEPOINT a"), TxEffect::RollbackToSavepoint);
        assert_eq!(tx_effect("rollback work to a"), TxEffect::RollbackToSavepoint);
        assert_eq!(tx_effect("commit prepared 'x'"), TxEffect::None);
        assert_eq!(tx_effect("commit and chain"), TxEffect::None);
        assert_eq!(tx_effect("rollback and chain"), TxEffect::None);
        assert_eq!(tx_effect("commit and no chain"), TxEffect::End);
        assert_eq!(tx_effect("select 1"), TxEffect::None);
        assert_eq!(tx_effect("beginning"), TxEffect::None);
        assert_eq!(command_word("  insert into t values (1)"), "INSERT");
        assert!(exits_failed_transaction("rollback"));
        assert!(!exits_failed_transaction("select 1"));
    }
}
