//! Rows in PostgreSQL's binary `COPY` format.
//!
//! `COPY … FROM STDIN (FORMAT binary)` is the fastest way into a table: no
//! SQL text to parse per row and no array parameters to unpack. The format is
//! a fixed header, then per row a field count and each field as a length
//! (`-1` for NULL) followed by the value in the type's binary send format
//! (big-endian integers, raw bytes for `bytea`, UTF-8 for `text`), then a
//! trailer of `-1`.

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Builds one binary `COPY` stream.
pub struct CopyWriter {
    buf: Vec<u8>,
}

impl CopyWriter {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + SIGNATURE.len() + 10);
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
        Self { buf }
    }

    /// Starts a row of `fields` fields.
    pub fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        // Every value the ledger writes is far below 2 GiB.
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    pub fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub fn int2(&mut self, v: i16) {
        self.field(&v.to_be_bytes());
    }

    pub fn int4(&mut self, v: i32) {
        self.field(&v.to_be_bytes());
    }

    pub fn int8(&mut self, v: i64) {
        self.field(&v.to_be_bytes());
    }

    pub fn opt_int4(&mut self, v: Option<i32>) {
        match v {
            Some(v) => self.int4(v),
            None => self.null(),
        }
    }

    pub fn opt_int8(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    pub fn bytea(&mut self, v: &[u8]) {
        self.field(v);
    }

    pub fn text(&mut self, v: &str) {
        self.field(v.as_bytes());
    }

    pub fn opt_text(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// The finished stream.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}
