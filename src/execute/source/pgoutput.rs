//! The change messages of PostgreSQL's `pgoutput` plugin (protocol version 1) that a source
//! uses: Relation, Insert, Update, Delete and Truncate. (pgwire-replication decodes Begin and
//! Commit itself.) Values arrive as text, as PostgreSQL's output functions write them.
//!
//! Reference: "Logical Replication Message Formats" in PostgreSQL's documentation.

/// One column of a tuple.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// An unchanged TOASTed value of an UPDATE: the new tuple does not carry it.
    Unchanged,
    Text(String),
}

/// A decoded change message.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A table's description; every change of that table until the next one refers to it.
    Relation {
        id: u32,
        schema: String,
        name: String,
        columns: Vec<String>,
    },
    Insert {
        relation: u32,
        new: Vec<Value>,
    },
    /// `old` is the old tuple's key or whole row when the table's replica identity sends it.
    Update {
        relation: u32,
        old: Option<Vec<Value>>,
        new: Vec<Value>,
    },
    Delete {
        relation: u32,
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// Begin, Commit, Origin, Type, Message: nothing for a source to do.
    Other,
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("pgoutput: a message ends early".into());
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("two bytes")))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    /// A NUL-terminated string.
    fn string(&mut self) -> Result<String, String> {
        let end = self.bytes.iter().position(|b| *b == 0).ok_or_else(|| "pgoutput: a string has no end".to_string())?;
        let text = String::from_utf8_lossy(&self.bytes[..end]).into_owned();
        self.bytes = &self.bytes[end + 1..];
        Ok(text)
    }

    fn tuple(&mut self) -> Result<Vec<Value>, String> {
        let columns = self.u16()?;
        (0..columns)
            .map(|_| match self.u8()? {
                b'n' => Ok(Value::Null),
                b'u' => Ok(Value::Unchanged),
                b't' | b'b' => {
                    let len = self.u32()? as usize;
                    Ok(Value::Text(String::from_utf8_lossy(self.take(len)?).into_owned()))
                }
                other => Err(format!("pgoutput: unknown tuple value kind {:?}", other as char)),
            })
            .collect()
    }
}

/// Decodes one message of the stream (an XLogData payload).
pub fn decode(message: &[u8]) -> Result<Change, String> {
    let mut r = Reader { bytes: message };
    match r.u8()? {
        b'R' => {
            let id = r.u32()?;
            let schema = r.string()?;
            let name = r.string()?;
            let _replica_identity = r.u8()?;
            let count = r.u16()?;
            let mut columns = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let _flags = r.u8()?;
                columns.push(r.string()?);
                let _type = r.u32()?;
                let _modifier = r.u32()?;
            }
            Ok(Change::Relation { id, schema, name, columns })
        }
        b'I' => {
            let relation = r.u32()?;
            expect(r.u8()?, b'N')?;
            Ok(Change::Insert { relation, new: r.tuple()? })
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut tag = r.u8()?;
            if tag == b'K' || tag == b'O' {
                old = Some(r.tuple()?);
                tag = r.u8()?;
            }
            expect(tag, b'N')?;
            Ok(Change::Update { relation, old, new: r.tuple()? })
        }
        b'D' => Ok(Change::Delete { relation: r.u32()? }),
        b'T' => {
            let count = r.u32()?;
            let _options = r.u8()?;
            let relations = (0..count).map(|_| r.u32()).collect::<Result<_, _>>()?;
            Ok(Change::Truncate { relations })
        }
        _ => Ok(Change::Other),
    }
}

fn expect(tag: u8, wanted: u8) -> Result<(), String> {
    if tag == wanted {
        Ok(())
    } else {
        Err(format!("pgoutput: expected {:?}, found {:?}", wanted as char, tag as char))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(values: &[Option<&str>]) -> Vec<u8> {
        let mut out = (values.len() as u16).to_be_bytes().to_vec();
        for value in values {
            match value {
                None => out.push(b'n'),
                Some(text) => {
                    out.push(b't');
                    out.extend((text.len() as u32).to_be_bytes());
                    out.extend(text.as_bytes());
                }
            }
        }
        out
    }

    #[test]
    fn relations_and_row_changes_decode() {
        let mut relation = vec![b'R'];
        relation.extend(16384u32.to_be_bytes());
        relation.extend(b"public\0tx\0d");
        relation.extend(2u16.to_be_bytes());
        for name in ["card", "amount"] {
            relation.push(1);
            relation.extend(name.as_bytes());
            relation.push(0);
            relation.extend(25u32.to_be_bytes());
            relation.extend((-1i32).to_be_bytes());
        }
        let Change::Relation { id, schema, name, columns } = decode(&relation).unwrap() else { panic!() };
        assert_eq!(
            (id, schema.as_str(), name.as_str(), columns),
            (16384, "public", "tx", vec!["card".into(), "amount".into()])
        );

        let mut insert = vec![b'I'];
        insert.extend(16384u32.to_be_bytes());
        insert.push(b'N');
        insert.extend(tuple(&[Some("c1"), None]));
        assert_eq!(
            decode(&insert).unwrap(),
            Change::Insert { relation: 16384, new: vec![Value::Text("c1".into()), Value::Null] }
        );

        let mut update = vec![b'U'];
        update.extend(16384u32.to_be_bytes());
        update.push(b'O');
        update.extend(tuple(&[Some("c0"), Some("1")]));
        update.push(b'N');
        update.extend(tuple(&[Some("c1"), Some("2")]));
        let Change::Update { old: Some(old), new, .. } = decode(&update).unwrap() else { panic!() };
        assert_eq!((old[0].clone(), new[1].clone()), (Value::Text("c0".into()), Value::Text("2".into())));

        let mut truncate = vec![b'T'];
        truncate.extend(2u32.to_be_bytes());
        truncate.push(0);
        truncate.extend(1u32.to_be_bytes());
        truncate.extend(2u32.to_be_bytes());
        assert_eq!(decode(&truncate).unwrap(), Change::Truncate { relations: vec![1, 2] });
    }

    #[test]
    fn a_truncated_message_is_an_error_not_a_panic() {
        let mut insert = vec![b'I'];
        insert.extend(16384u32.to_be_bytes());
        insert.push(b'N');
        insert.extend(tuple(&[Some("c1")]));
        for end in 0..insert.len() {
            assert!(decode(&insert[..end]).is_err(), "prefix of {end} bytes");
        }
    }
}
