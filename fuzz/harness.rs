//! The bodies of the fuzz targets, shared by `fuzz_targets/*.rs` (cargo fuzz, nightly) and
//! by `tests/it/fuzz_corpus.rs`, which replays the kept corpora and regression cases on stable.
//!
//! Each function takes the fuzzer's bytes, runs them through the code a client's input
//! reaches, and panics only when an invariant breaks; errors are the expected outcome for
//! nearly every input.

use std::sync::Arc;

use asofdb::catalog::{ColumnDef, TableDef};
use asofdb::execute::copy_format::{CopyFormat, Position};
use asofdb::execute::copy_rows::decode_rows;
use asofdb::feature::FeatureDef;
use asofdb::sql::types::ColumnType;
use asofdb::sql::{SqlParser, Statement};
use asofdb::value::time_zone::SessionZone;
use bytes::BytesMut;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};

/// A table with a column of every type, the event-time column NOT NULL.
fn table() -> TableDef {
    let column = |name: &str, ty, not_null| ColumnDef::new(name, ty, not_null);
    TableDef {
        id: 1,
        name: "tx".into(),
        columns: vec![
            column("card", ColumnType::BigInt, false),
            column("amt", ColumnType::Double, false),
            column("ok", ColumnType::Boolean, false),
            column("code", ColumnType::Varchar { max_len: Some(4) }, false),
            column("ts", ColumnType::Timestamp, true),
            column("day", ColumnType::Date, false),
            column("price", ColumnType::Numeric { precision: 10, scale: 2 }, false),
            column("raw", ColumnType::Bytea, false),
            column("n", ColumnType::SmallInt, false),
            column("at", ColumnType::TimestampTz, false),
            column("r", ColumnType::Real, false),
            column("i", ColumnType::Integer, false),
            column("note", ColumnType::Text, false),
        ],
        event_time: Some(4),
        hot_retention_micros: 0,
        retention_micros: None,
        ingest_time: None,
        temporary: false,
        owner: "asofdb".into(),
    }
}

/// Statement text through the splitter, the ASOF JOIN rewriting, sqlparser, our
/// CREATE/DROP FEATURE parser, and (for CREATE FEATURE) binding to a table.
pub fn sql_statement(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parser = SqlParser::new();
    let Ok(statements) = parser.parse_many(text) else { return };
    let table = Arc::new(table());
    for statement in &statements {
        let _ = statement.is_read_only();
        if let Statement::CreateFeature(create) = statement {
            let _ = FeatureDef::bind(create, |_| Ok(table.clone()));
        }
    }
    // One statement parses the same whichever protocol carries it.
    if statements.len() == 1 {
        let single = parser.parse_single(text).expect("one statement parses alone");
        assert!(single.is_some(), "a parsed statement is not empty");
    }
}

/// COPY FROM data: the first byte picks the format and options, the next two where the
/// stream is cut into two network chunks, the rest is the data. Decoding the stream in two
/// chunks must give the same rows (or the same failure) as decoding it whole.
pub fn copy_rows(data: &[u8]) {
    let [options, cut_high, cut_low, body @ ..] = data else { return };
    let def = table();
    let csv = options & 1 != 0;
    let binary = options & 2 != 0 && !csv;
    let format = CopyFormat {
        csv,
        binary,
        header: options & 4 != 0,
        delimiter: match (options >> 3 & 1, csv) {
            (1, _) => b'|',
            (_, true) => b',',
            _ => b'\t',
        },
        null: if options & 16 != 0 {
            "NULL".into()
        } else if csv {
            String::new()
        } else {
            "\\N".into()
        },
        quote: b'"',
        escape: if options & 32 != 0 { b'\\' } else { b'"' },
    };
    // Every column, or the first five (the rest NULL), in table order or reversed.
    let mut targets: Vec<usize> = if options & 64 != 0 { (0..5).collect() } else { (0..def.columns.len()).collect() };
    if options & 128 != 0 {
        targets.reverse();
    }
    let whole = decode_rows(&def, &targets, &format, &mut Position::default(), body, true, &SessionZone::default());

    let cut = (usize::from(*cut_high) << 8 | usize::from(*cut_low)).min(body.len());
    let mut position = Position::default();
    let mut rows = Vec::new();
    let chunked = decode_rows(&def, &targets, &format, &mut position, &body[..cut], false, &SessionZone::default())
        .and_then(|(first, used)| {
            rows.push(first);
            let (second, _) =
                decode_rows(&def, &targets, &format, &mut position, &body[used..], true, &SessionZone::default())?;
            rows.push(second);
            Ok(())
        });
    match (whole, chunked) {
        (Ok((batch, used)), Ok(())) => {
            assert_eq!(used, body.len(), "the last chunk is consumed whole");
            let joined = arrow::compute::concat_batches(&batch.schema(), &rows).expect("same schema");
            assert_eq!(batch, joined, "chunked COPY data decodes to the same rows");
        }
        (Err(_), Err(_)) => {}
        (whole, chunked) => panic!("whole: {:?}, chunked: {:?}", whole.map(|(b, _)| b.num_rows()), chunked),
    }
}

/// Bytes from a client: the SSL/startup negotiation, then regular messages, decoded the way
/// pgwire's codec does, until the input runs out or is refused.
pub fn wire_messages(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut ctx = DecodeContext::default();
    loop {
        match PgWireFrontendMessage::decode(&mut buf, &ctx) {
            Ok(Some(message)) => match message {
                PgWireFrontendMessage::SslNegotiation(_) => ctx.awaiting_frontend_ssl = false,
                PgWireFrontendMessage::Startup(_) | PgWireFrontendMessage::CancelRequest(_) => {
                    ctx.awaiting_frontend_startup = false
                }
                _ => {}
            },
            Ok(None) | Err(_) => return,
        }
    }
}
