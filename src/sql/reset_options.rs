//! `ALTER TABLE t RESET (option, ...)`, which sqlparser does not parse, spelled as the
//! `ALTER TABLE t SET (option = NULL, ...)` it does: a NULL option value means "back to the
//! default" (`execute::alter_table`).

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The SET spelling of an `ALTER TABLE ... RESET (...)` statement; `None` for any other text.
pub fn normalize(text: &str) -> Option<String> {
    // Every statement comes through here: most are not tokenized again.
    if !text.as_bytes().windows(5).any(|w| w.eq_ignore_ascii_case(b"reset")) {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize().ok()?;
    let words: Vec<(usize, &Token)> =
        tokens.iter().enumerate().filter(|(_, t)| !matches!(t, Token::Whitespace(_) | Token::SemiColon)).collect();
    let keyword = |i: usize, k: Keyword| matches!(words.get(i), Some((_, Token::Word(w))) if w.keyword == k);
    if !(keyword(0, Keyword::ALTER) && keyword(1, Keyword::TABLE)) {
        return None;
    }
    // RESET ( name [, name]* ) ends the statement.
    let reset = words.iter().position(|(_, t)| matches!(t, Token::Word(w) if w.keyword == Keyword::RESET))?;
    let rest = &words[reset + 1..];
    let (Some((_, Token::LParen)), Some((_, Token::RParen))) = (rest.first(), rest.last()) else { return None };
    let mut names = Vec::new();
    for (i, (_, token)) in rest[1..rest.len() - 1].iter().enumerate() {
        match (i % 2, token) {
            (0, Token::Word(w)) => names.push(w.to_string()),
            (1, Token::Comma) => {}
            _ => return None,
        }
    }
    if names.is_empty() {
        return None;
    }
    let head: String = tokens[..words[reset].0].iter().map(|t| t.to_string()).collect();
    let options: Vec<String> = names.iter().map(|n| format!("{n} = NULL")).collect();
    Some(format!("{head}SET ({})", options.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_is_spelled_as_set_to_null() {
        assert_eq!(
            normalize("alter table IF EXISTS \"Tx\" reset (retention, hot_retention);").as_deref(),
            Some("alter table IF EXISTS \"Tx\" SET (retention = NULL, hot_retention = NULL)")
        );
        assert_eq!(normalize("ALTER TABLE t SET (retention = '1 day')"), None);
        assert_eq!(normalize("ALTER TABLE t RESET ()"), None);
        assert_eq!(normalize("SELECT reset (1)"), None);
    }
}
