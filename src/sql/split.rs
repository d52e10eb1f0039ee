//! Splits a query string into statements at top-level semicolons.
//!
//! A simple-protocol query may hold several statements, some of which (CREATE FEATURE) no
//! stock parser knows; splitting first lets each statement go to the parser that knows it.
//! Semicolons inside quotes, dollar quotes and comments do not split.

/// The statements of `sql`, trimmed, empty ones dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = skip_quoted(bytes, i, bytes[i]),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' => i = skip_dollar_quoted(sql, i),
            b';' => {
                push_trimmed(&mut statements, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push_trimmed(&mut statements, &sql[start..]);
    statements
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, statement: &'a str) {
    let trimmed = statement.trim();
    if !trimmed.is_empty() && !is_only_comments(trimmed) {
        out.push(trimmed);
    }
}

fn is_only_comments(text: &str) -> bool {
    let mut rest = text.trim_start();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |p| &after[p + 1..]).trim_start();
        } else if rest.starts_with("/*") {
            let end = skip_block_comment(rest.as_bytes(), 0);
            rest = rest.get(end..).unwrap_or("").trim_start();
        } else {
            return false;
        }
    }
}

/// Index just past the closing quote; a doubled quote is an escaped quote.
fn skip_quoted(bytes: &[u8], open: usize, quote: u8) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Index just past a (possibly nested) `/* ... */` comment.
fn skip_block_comment(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i + 1 < bytes.len() {
        if bytes[i] == b'/' && bytes[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Index just past `$tag$ ... $tag$`, or past the `$` if it does not open a dollar quote
/// (e.g. a `$1` parameter).
fn skip_dollar_quoted(sql: &str, open: usize) -> usize {
    let rest = &sql[open + 1..];
    let tag_len = rest.find('$');
    let Some(tag_len) = tag_len else { return open + 1 };
    let tag = &rest[..tag_len];
    let valid_tag =
        tag.chars().all(|c| c.is_alphanumeric() || c == '_') && !tag.starts_with(|c: char| c.is_ascii_digit());
    if !valid_tag {
        return open + 1;
    }
    let delimiter = &sql[open..open + tag_len + 2];
    let body_start = open + tag_len + 2;
    match sql[body_start..].find(delimiter) {
        Some(p) => body_start + p + delimiter.len(),
        None => sql.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let sql = "SELECT ';'; SELECT \"a;b\" -- c;\n; /* ; /* ; */ */ SELECT $x$;$x$;;SELECT $1";
        assert_eq!(
            split_statements(sql),
            vec!["SELECT ';'", "SELECT \"a;b\" -- c;", "/* ; /* ; */ */ SELECT $x$;$x$", "SELECT $1"]
        );
    }

    #[test]
    fn empty_and_comment_only_input_has_no_statements() {
        assert!(split_statements("  ;; -- nothing\n /* x */ ").is_empty());
        assert!(split_statements("'unterminated").len() == 1);
        assert_eq!(split_statements("SELECT 'it''s'; x"), vec!["SELECT 'it''s'", "x"]);
    }
}
