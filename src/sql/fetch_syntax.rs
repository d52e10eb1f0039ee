//! FETCH as PostgreSQL writes it: the direction and `FROM`/`IN` may be left out (`FETCH c`,
//! `FETCH 2 c`, `FETCH FORWARD FROM c`), which sqlparser requires. Spelled out here before
//! parsing, with the same meaning (no direction is NEXT, FORWARD alone is FORWARD 1).

/// `text` with its FETCH direction and `FROM` written out, if it is a FETCH that needs it.
pub fn normalize(text: &str) -> Option<String> {
    let (first, mut rest) = next_word(text)?;
    if !first.eq_ignore_ascii_case("fetch") {
        return None;
    }
    let mut direction = Vec::new();
    let (word, after) = next_word(rest)?;
    let upper = word.to_ascii_uppercase();
    match upper.as_str() {
        "NEXT" | "PRIOR" | "FIRST" | "LAST" | "ALL" => {
            direction.push(word);
            rest = after;
        }
        "ABSOLUTE" | "RELATIVE" => {
            let (count, after) = next_word(after)?;
            direction.extend([word, count]);
            rest = after;
        }
        "FORWARD" | "BACKWARD" => {
            direction.push(word);
            rest = after;
            match next_word(after) {
                Some((count, after)) if is_count(count) || count.eq_ignore_ascii_case("all") => {
                    direction.push(count);
                    rest = after;
                }
                _ => direction.push("1"),
            }
        }
        _ if is_count(word) => {
            direction.push(word);
            rest = after;
        }
        _ => direction.push("NEXT"),
    }
    let (word, after) = next_word(rest)?;
    let name = if word.eq_ignore_ascii_case("from") || word.eq_ignore_ascii_case("in") { after } else { rest };
    Some(format!("FETCH {} FROM {}", direction.join(" "), name.trim_start()))
}

fn is_count(word: &str) -> bool {
    let digits = word.strip_prefix(['-', '+']).unwrap_or(word);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The first whitespace-separated word of `text` and what follows it.
fn next_word(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some((&text[..end], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn spells_out_direction_and_from() {
        assert_eq!(normalize("FETCH c").as_deref(), Some("FETCH NEXT FROM c"));
        assert_eq!(normalize("fetch from c;").as_deref(), Some("FETCH NEXT FROM c;"));
        assert_eq!(normalize("FETCH 2 c").as_deref(), Some("FETCH 2 FROM c"));
        assert_eq!(normalize("FETCH FORWARD FROM \"my c\"").as_deref(), Some("FETCH FORWARD 1 FROM \"my c\""));
        assert_eq!(normalize("FETCH FORWARD 5 IN c").as_deref(), Some("FETCH FORWARD 5 FROM c"));
        assert_eq!(normalize("FETCH FORWARD ALL FROM c").as_deref(), Some("FETCH FORWARD ALL FROM c"));
        assert_eq!(normalize("FETCH ABSOLUTE 3 c").as_deref(), Some("FETCH ABSOLUTE 3 FROM c"));
        assert_eq!(normalize("SELECT 1"), None);
        assert_eq!(normalize("FETCH"), None);
    }
}
