//! A minimal hand-written PostgreSQL frontend (protocol 3.0 over a plain socket), for tests
//! that check the server message by message or send what no driver would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::BinaryServer;

/// One backend message: its type byte and body.
#[derive(Debug)]
pub struct Message {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Message {
    /// The fields of an ErrorResponse, as (code, value) pairs.
    pub fn error_field(&self, code: u8) -> Option<String> {
        assert_eq!(self.tag, b'E', "not an error: {self:?}");
        self.body
            .split(|b| *b == 0)
            .find(|f| f.first() == Some(&code))
            .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
    }

    /// The parameter OIDs of a ParameterDescription.
    pub fn parameter_oids(&self) -> Vec<u32> {
        assert_eq!(self.tag, b't', "not a ParameterDescription: {self:?}");
        let n = u16::from_be_bytes([self.body[0], self.body[1]]) as usize;
        (0..n).map(|i| u32::from_be_bytes(self.body[2 + 4 * i..6 + 4 * i].try_into().unwrap())).collect()
    }

    /// (name, type OID) of each column of a RowDescription.
    pub fn columns(&self) -> Vec<(String, u32)> {
        assert_eq!(self.tag, b'T', "not a RowDescription: {self:?}");
        let n = u16::from_be_bytes([self.body[0], self.body[1]]) as usize;
        let mut at = 2;
        let mut out = Vec::new();
        for _ in 0..n {
            let end = at + self.body[at..].iter().position(|b| *b == 0).unwrap();
            let name = String::from_utf8_lossy(&self.body[at..end]).into_owned();
            at = end + 1;
            let oid = u32::from_be_bytes(self.body[at + 6..at + 10].try_into().unwrap());
            out.push((name, oid));
            at += 18;
        }
        out
    }

    /// The values of a DataRow (None for NULL).
    pub fn values(&self) -> Vec<Option<Vec<u8>>> {
        assert_eq!(self.tag, b'D', "not a DataRow: {self:?}");
        let n = u16::from_be_bytes([self.body[0], self.body[1]]) as usize;
        let mut at = 2;
        let mut out = Vec::new();
        for _ in 0..n {
            let len = i32::from_be_bytes(self.body[at..at + 4].try_into().unwrap());
            at += 4;
            if len < 0 {
                out.push(None);
            } else {
                out.push(Some(self.body[at..at + len as usize].to_vec()));
                at += len as usize;
            }
        }
        out
    }
}

/// A parameter value in a Bind: text or binary.
pub enum Param<'a> {
    Text(&'a str),
    Binary(Vec<u8>),
}

/// A frontend speaking protocol 3.0 over one socket.
pub struct Frontend {
    pub socket: TcpStream,
}

impl Frontend {
    pub fn connect(server: &BinaryServer) -> Frontend {
        let socket = TcpStream::connect(server.addr).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut fe = Frontend { socket };
        let mut body = 196608u32.to_be_bytes().to_vec();
        for s in ["user", "test", "database", "asofdb", ""] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        fe.socket.write_all(&startup).unwrap();
        fe.until_ready();
        fe
    }

    pub fn send(&mut self, tag: u8, body: &[u8]) {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        self.socket.write_all(&out).unwrap();
    }

    pub fn parse(&mut self, name: &str, sql: &str, types: &[u32]) {
        let mut body = cstr(name);
        body.extend(cstr(sql));
        body.extend((types.len() as u16).to_be_bytes());
        for t in types {
            body.extend(t.to_be_bytes());
        }
        self.send(b'P', &body);
    }

    pub fn bind(&mut self, statement: &str, params: &[Param], binary_results: bool) {
        let mut body = cstr("");
        body.extend(cstr(statement));
        body.extend((params.len() as u16).to_be_bytes());
        for p in params {
            body.extend((matches!(p, Param::Binary(_)) as u16).to_be_bytes());
        }
        body.extend((params.len() as u16).to_be_bytes());
        for p in params {
            let bytes = match p {
                Param::Text(s) => s.as_bytes().to_vec(),
                Param::Binary(b) => b.clone(),
            };
            body.extend((bytes.len() as i32).to_be_bytes());
            body.extend(bytes);
        }
        body.extend(1u16.to_be_bytes());
        body.extend((binary_results as u16).to_be_bytes());
        self.send(b'B', &body);
    }

    pub fn describe_statement(&mut self, name: &str) {
        let mut body = vec![b'S'];
        body.extend(cstr(name));
        self.send(b'D', &body);
    }

    pub fn execute(&mut self) {
        let mut body = cstr("");
        body.extend(0i32.to_be_bytes());
        self.send(b'E', &body);
    }

    pub fn sync(&mut self) {
        self.send(b'S', &[]);
    }

    pub fn query(&mut self, sql: &str) -> Vec<Message> {
        self.send(b'Q', &cstr(sql));
        self.until_ready()
    }

    pub fn read(&mut self) -> Message {
        let mut header = [0u8; 5];
        self.socket.read_exact(&mut header).unwrap();
        let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        self.socket.read_exact(&mut body).unwrap();
        Message { tag: header[0], body }
    }

    /// Every message up to and including ReadyForQuery, without notices and parameter status.
    pub fn until_ready(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            let m = self.read();
            let ready = m.tag == b'Z';
            if !matches!(m.tag, b'N' | b'S' | b'K' | b'R') {
                out.push(m);
            }
            if ready {
                return out;
            }
        }
    }
}

pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}
