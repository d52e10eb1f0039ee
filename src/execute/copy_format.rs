//! COPY options and the decoder for COPY FROM data in PostgreSQL's text and CSV formats.
//!
//! The decoder is hand-written rather than taken from the `csv` crate because PostgreSQL's
//! NULL rule needs to know whether a field was quoted (an unquoted empty field is NULL in CSV,
//! a quoted one is an empty string), and text format has its own backslash escapes.

use arrow::array::{ArrayRef, StringBuilder};
use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::error::{Error, Result, SqlState};
use crate::sql::names::ident_name;

/// How COPY data is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    pub csv: bool,
    /// PostgreSQL's binary format (`copy_binary` decodes it; `server::copy_out` encodes it).
    pub binary: bool,
    pub header: bool,
    pub delimiter: u8,
    pub null: String,
    pub quote: u8,
    pub escape: u8,
}

impl CopyFormat {
    /// Resolves both the modern `WITH (...)` options and the pre-9.0 keyword options.
    pub fn from_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Self> {
        let (mut csv, mut binary) = (false, false);
        let (mut header, mut delimiter, mut null, mut quote, mut escape) = (false, None, None, None, None);
        for option in options {
            match option {
                CopyOption::Format(name) => match ident_name(name).as_str() {
                    "text" => csv = false,
                    "csv" => csv = true,
                    "binary" => binary = true,
                    other => {
                        return Err(Error::invalid_input(
                            SqlState::InvalidParameterValue,
                            format!("COPY format \"{other}\" not recognized"),
                        ));
                    }
                },
                CopyOption::Header(h) => header = *h,
                CopyOption::Delimiter(c) => delimiter = Some(*c),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Quote(c) => quote = Some(*c),
                CopyOption::Escape(c) => escape = Some(*c),
                CopyOption::Freeze(_) | CopyOption::Encoding(_) => {}
                other => return Err(Error::unsupported(format!("COPY option {other} is not supported"))),
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for o in csv_options {
                        match o {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(c) => quote = Some(*c),
                            CopyLegacyCsvOption::Escape(c) => escape = Some(*c),
                            other => return Err(Error::unsupported(format!("COPY option {other} is not supported"))),
                        }
                    }
                }
                CopyLegacyOption::Binary => binary = true,
                other => return Err(Error::unsupported(format!("COPY option {other} is not supported"))),
            }
        }
        let single_byte = |c: char, what: &str| -> Result<u8> {
            if c.is_ascii() {
                Ok(c as u8)
            } else {
                Err(Error::invalid_input(
                    SqlState::InvalidParameterValue,
                    format!("COPY {what} must be a single one-byte character"),
                ))
            }
        };
        let delimiter = single_byte(delimiter.unwrap_or(if csv { ',' } else { '\t' }), "delimiter")?;
        let quote = single_byte(quote.unwrap_or('"'), "quote")?;
        let escape = single_byte(escape.unwrap_or(quote as char), "escape")?;
        if matches!(delimiter, b'\r' | b'\n') || (!csv && delimiter == b'\\') {
            return Err(Error::invalid_input(
                SqlState::InvalidParameterValue,
                "COPY delimiter cannot be newline, carriage return or backslash",
            ));
        }
        if csv && delimiter == quote {
            return Err(Error::invalid_input(
                SqlState::InvalidParameterValue,
                "COPY delimiter and quote must be different",
            ));
        }
        if !csv && (options.iter().any(|o| matches!(o, CopyOption::Quote(_) | CopyOption::Escape(_)))) {
            return Err(Error::invalid_input(
                SqlState::InvalidParameterValue,
                "COPY quote and escape are available only in CSV mode",
            ));
        }
        let null = null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() });
        if binary && (csv || header || options.iter().any(|o| !matches!(o, CopyOption::Format(_)))) {
            return Err(Error::invalid_input(
                SqlState::SyntaxError,
                "cannot specify other COPY options in BINARY mode",
            ));
        }
        Ok(CopyFormat { csv, binary, header, delimiter, null, quote, escape })
    }
}

/// Decoded COPY data: one column per target column (text, except binary COPY's common types,
/// which come in the column's type), and the input line of each row.
pub struct DecodedRows {
    pub columns: Vec<ArrayRef>,
    pub lines: Vec<usize>,
}

impl DecodedRows {
    pub fn new(builders: Vec<StringBuilder>, lines: Vec<usize>) -> Self {
        let columns = builders.into_iter().map(|mut b| std::sync::Arc::new(b.finish()) as ArrayRef).collect();
        DecodedRows { columns, lines }
    }
}

/// Decodes all of `data` into `column_names.len()` text columns. Errors name the line.
#[cfg(test)]
pub fn decode(data: &[u8], format: &CopyFormat, column_names: &[String]) -> Result<DecodedRows> {
    let mut position = Position::default();
    decode_chunk(data, format, column_names, &mut position, true).map(|(rows, _)| rows)
}

/// Where a COPY stream is: the next input line, and whether the header line is behind.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    pub line: usize,
    pub past_header: bool,
    /// The `\.` end marker was read: the rest of the stream is ignored.
    pub ended: bool,
}

impl Default for Position {
    fn default() -> Self {
        Position { line: 1, past_header: false, ended: false }
    }
}

/// Decodes the complete records at the start of `data` (all of it if `last`), one chunk of a
/// COPY stream; returns them with the number of bytes they took. An unfinished record at the
/// end is left for the next chunk. `position` carries the line count and header state over.
pub fn decode_chunk(
    data: &[u8],
    format: &CopyFormat,
    column_names: &[String],
    position: &mut Position,
    last: bool,
) -> Result<(DecodedRows, usize)> {
    // A chunk ends at its last newline (never inside a UTF-8 sequence); a CSV record whose
    // quoted field runs past it is cut off by the reader and left for later.
    if position.ended {
        let empty = column_names.iter().map(|_| arrow::array::new_empty_array(&arrow::datatypes::DataType::Utf8));
        return Ok((DecodedRows { columns: empty.collect(), lines: Vec::new() }, data.len()));
    }
    let end = if last { data.len() } else { data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) };
    // Bytes after the end marker are ignored, even ones that are not UTF-8: read the valid
    // part as if more followed, and fail only if the marker is not in it.
    let (text, invalid) = match std::str::from_utf8(&data[..end]) {
        Ok(text) => (text, None),
        Err(e) => {
            // Whole lines only: the line with the bad byte must not parse as a shorter record.
            let lines_end = data[..e.valid_up_to()].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let valid = std::str::from_utf8(&data[..lines_end]).unwrap_or_default();
            let line = position.line + valid.bytes().filter(|b| *b == b'\n').count();
            (
                valid,
                Some(Error::invalid_value(
                    SqlState::CharacterNotInRepertoire,
                    format!("invalid byte sequence for encoding \"UTF8\" (line {line})"),
                )),
            )
        }
    };
    let mut builders: Vec<StringBuilder> = column_names.iter().map(|_| StringBuilder::new()).collect();
    let mut lines = Vec::new();
    let partial = !last || invalid.is_some();
    let mut reader = RecordReader { text, pos: 0, line: position.line, format, partial, ended: false };
    let mut fields: Vec<Option<String>> = Vec::with_capacity(column_names.len());
    while let Some(line) = reader.next_record(&mut fields)? {
        if format.header && !std::mem::replace(&mut position.past_header, true) {
            continue;
        }
        if fields.len() > column_names.len() {
            return Err(bad_copy(format!("extra data after last expected column (line {line})")));
        }
        if fields.len() < column_names.len() {
            let missing = &column_names[fields.len()];
            return Err(bad_copy(format!("missing data for column \"{missing}\" (line {line})")));
        }
        for (builder, field) in builders.iter_mut().zip(fields.drain(..)) {
            builder.append_option(field);
        }
        lines.push(line);
    }
    if let Some(invalid) = invalid
        && !reader.ended
    {
        return Err(invalid);
    }
    position.line = reader.line;
    position.ended = reader.ended;
    let consumed = if last || reader.ended { data.len() } else { reader.pos };
    Ok((DecodedRows::new(builders, lines), consumed))
}

fn bad_copy(message: String) -> Error {
    Error::invalid_value(SqlState::BadCopyFileFormat, message)
}

struct RecordReader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    format: &'a CopyFormat,
    /// More data follows `text`: a record cut off at its end is left unread, not an error.
    partial: bool,
    ended: bool,
}

impl RecordReader<'_> {
    /// Reads the next record into `fields`, returning the line it started on; `None` at the
    /// end of data or at the `\.` end marker.
    fn next_record(&mut self, fields: &mut Vec<Option<String>>) -> Result<Option<usize>> {
        fields.clear();
        if self.pos >= self.text.len() {
            return Ok(None);
        }
        let start_line = self.line;
        let rest = &self.text[self.pos..];
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let line = rest[..line_end].strip_suffix('\r').unwrap_or(&rest[..line_end]);
        if line == "\\." {
            self.pos = self.text.len();
            self.ended = true;
            return Ok(None);
        }
        if self.format.csv {
            if !self.read_csv_record(fields)? {
                return Ok(None);
            }
        } else {
            read_text_fields(line, self.format, fields).map_err(|m| bad_copy(format!("{m} (line {start_line})")))?;
            self.pos += line_end + 1;
            self.line += 1;
        }
        Ok(Some(start_line))
    }

    /// CSV: quoted fields may span lines; `""` (or escape+quote) inside quotes is a quote.
    /// Returns false, reading nothing, for a record cut off by the end of a partial text.
    fn read_csv_record(&mut self, fields: &mut Vec<Option<String>>) -> Result<bool> {
        let bytes = self.text.as_bytes();
        let f = self.format;
        let start_line = self.line;
        let mut field = Vec::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut i = self.pos;
        loop {
            let Some(&b) = bytes.get(i) else {
                if in_quotes && self.partial {
                    fields.clear();
                    self.line = start_line;
                    return Ok(false);
                }
                if in_quotes {
                    return Err(bad_copy(format!("unterminated CSV quoted field (line {start_line})")));
                }
                push_csv_field(fields, &mut field, quoted, f);
                self.pos = i;
                return Ok(true);
            };
            if in_quotes {
                if b == f.escape && bytes.get(i + 1) == Some(&f.quote) {
                    field.push(f.quote);
                    i += 2;
                    continue;
                }
                if b == f.quote {
                    in_quotes = false;
                } else {
                    if b == b'\n' {
                        self.line += 1;
                    }
                    field.push(b);
                }
                i += 1;
                continue;
            }
            match b {
                _ if b == f.quote => {
                    in_quotes = true;
                    quoted = true;
                }
                _ if b == f.delimiter => {
                    push_csv_field(fields, &mut field, quoted, f);
                    quoted = false;
                }
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {}
                b'\n' => {
                    push_csv_field(fields, &mut field, quoted, f);
                    self.pos = i + 1;
                    self.line += 1;
                    return Ok(true);
                }
                _ => field.push(b),
            }
            i += 1;
        }
    }
}

fn push_csv_field(fields: &mut Vec<Option<String>>, field: &mut Vec<u8>, quoted: bool, f: &CopyFormat) {
    // Input was valid UTF-8 and we only split at ASCII bytes, so this cannot fail.
    let value = String::from_utf8_lossy(field).into_owned();
    field.clear();
    fields.push(if !quoted && value == f.null { None } else { Some(value) });
}

/// Text format: split at the delimiter, NULL marker compared before unescaping.
fn read_text_fields(line: &str, f: &CopyFormat, fields: &mut Vec<Option<String>>) -> std::result::Result<(), String> {
    let bytes = line.as_bytes();
    let mut start = 0;
    let mut i = 0;
    loop {
        if i == bytes.len() || bytes[i] == f.delimiter {
            let raw = &line[start..i];
            fields.push(if raw == f.null { None } else { Some(unescape_text(raw)?) });
            if i == bytes.len() {
                return Ok(());
            }
            start = i + 1;
        } else if bytes[i] == b'\\' {
            i += 1; // the escaped byte never splits
        }
        i += 1;
        i = i.min(bytes.len());
    }
}

fn unescape_text(raw: &str) -> std::result::Result<String, String> {
    if !raw.contains('\\') {
        return Ok(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let Some(&next) = bytes.get(i + 1) else {
            return Err("unterminated backslash escape at end of field".into());
        };
        i += 2;
        match next {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = (next - b'0') as u32;
                for _ in 0..2 {
                    match bytes.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match bytes.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    out.push(b'x');
                } else {
                    out.push(value as u8);
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| "escape sequence produces invalid UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray};

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    fn text_format() -> CopyFormat {
        CopyFormat::from_options(&[], &[]).unwrap()
    }

    fn csv_format(header: bool) -> CopyFormat {
        CopyFormat { csv: true, binary: false, header, delimiter: b',', null: String::new(), quote: b'"', escape: b'"' }
    }

    fn column(rows: &DecodedRows, i: usize) -> Vec<Option<String>> {
        let a = rows.columns[i].as_any().downcast_ref::<StringArray>().unwrap();
        (0..a.len()).map(|r| a.is_valid(r).then(|| a.value(r).to_string())).collect()
    }

    #[test]
    fn text_format_nulls_escapes_and_end_marker() {
        let data = b"1\ta\\tb\n2\t\\N\n\\.\nignored\n";
        let rows = decode(data, &text_format(), &names(2)).unwrap();
        assert_eq!(rows.lines, vec![1, 2]);
        assert_eq!(column(&rows, 1), vec![Some("a\tb".into()), None]);
    }

    #[test]
    fn csv_quotes_nulls_and_multiline_fields() {
        let data = b"id,name\n1,\"x,\"\"y\"\"\"\n2,\n3,\"\"\n4,\"two\nlines\"\n5,z\r\n";
        let rows = decode(data, &csv_format(true), &names(2)).unwrap();
        assert_eq!(
            column(&rows, 1),
            vec![Some("x,\"y\"".into()), None, Some("".into()), Some("two\nlines".into()), Some("z".into())]
        );
        assert_eq!(rows.lines, vec![2, 3, 4, 5, 7]);
    }

    #[test]
    fn malformed_input_names_the_line() {
        let err = decode(b"1\t2\n3\n", &text_format(), &names(2)).err().unwrap();
        assert_eq!(err.sqlstate(), "22P04");
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = decode(b"1,2,3\n", &csv_format(false), &names(2)).err().unwrap();
        assert!(err.to_string().contains("extra data"), "{err}");
        let err = decode(b"1,\"open\n", &csv_format(false), &names(2)).err().unwrap();
        assert!(err.to_string().contains("unterminated"), "{err}");
        let err = decode(b"1,\xff\n", &csv_format(false), &names(2)).err().unwrap();
        assert_eq!(err.sqlstate(), "22021");
        // A bad byte anywhere in a line is an encoding error, not a short record.
        let err = decode(b"a\tb\nx\xff\ty\n", &text_format(), &names(2)).err().unwrap();
        assert_eq!((err.sqlstate(), err.to_string().contains("line 2")), ("22021", true), "{err}");
        // After the end marker anything goes, but the marker must be a whole line.
        assert_eq!(decode(b"a\tb\n\\.\n\xff\n", &text_format(), &names(2)).unwrap().lines, [1]);
        assert_eq!(decode(b"a\tb\n\\.\xff\n", &text_format(), &names(2)).err().unwrap().sqlstate(), "22021");
    }
}
