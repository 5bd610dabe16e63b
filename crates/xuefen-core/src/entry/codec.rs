//! The primitives of the canonical byte layout (`docs/ledger-format.md`):
//! length-prefixed strings, optional integers, and the reader that decodes them
//! and names the field a malformed entry breaks.

use super::*;

pub(super) fn field_err(e: crate::FieldError) -> DecodeError {
    let field = match e.field {
        std::borrow::Cow::Borrowed(f) => f,
        std::borrow::Cow::Owned(_) => "field",
    };
    DecodeError::Field {
        field,
        detail: e.detail,
    }
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    // Every string field is bounded far below u32::MAX by the id limits.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn put_opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or(DecodeError::Truncated(self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let at = self.at;
        self.take(N)?.try_into().map_err(|_| DecodeError::Truncated(at))
    }
    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub(super) fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Field {
                field: "flag",
                detail: "must be 0 or 1".into(),
            }),
        }
    }
    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(super) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// A flag, then (when it is set) what `read` reads.
    pub(super) fn opt<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        Ok(if self.flag()? { Some(read(self)?) } else { None })
    }
    /// A string parsed by `parse`, a refusal reported as the field it names.
    pub(super) fn parsed<T>(
        &mut self,
        parse: impl FnOnce(String) -> Result<T, crate::FieldError>,
    ) -> Result<T, DecodeError> {
        parse(self.str()?).map_err(field_err)
    }
    pub(super) fn opt_i64(&mut self) -> Result<Option<i64>, DecodeError> {
        Ok(if self.flag()? { Some(self.i64()?) } else { None })
    }
    pub(super) fn str(&mut self) -> Result<String, DecodeError> {
        let len = self.u32()? as usize;
        let at = self.at;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::Field {
            field: "string",
            detail: format!("not UTF-8 at byte {at}"),
        })
    }
}
