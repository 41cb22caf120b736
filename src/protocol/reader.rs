//! A bounds-checked cursor over one message body. Every read either returns the field or a
//! [`DecodeError`]; nothing indexes past the end, so hostile lengths cannot panic the decoder.

use super::error::DecodeError;

pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        let b = self.bytes(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let b = self.bytes(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated { what });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// A NUL-terminated string, without the NUL.
    pub fn cstr(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let raw = self.cbytes(what)?;
        std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8 { what })
    }

    /// A NUL-terminated byte string, without the NUL.
    pub fn cbytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.buf.iter().position(|&b| b == 0).ok_or(DecodeError::MissingTerminator { what })?;
        let (head, tail) = self.buf.split_at(end);
        self.buf = &tail[1..];
        Ok(head)
    }

    /// A count field (Int16) that is checked against the bytes left, so a hostile count cannot
    /// make the decoder allocate more than the message itself could hold.
    /// A count of items: 16 bits, unsigned as PostgreSQL reads it (`pq_getmsgint(msg, 2)`), so
    /// a Bind may carry up to 65535 parameters.
    pub fn count(&mut self, what: &'static str, min_item_size: usize) -> Result<usize, DecodeError> {
        let n = self.i16(what)? as u16 as usize;
        if n.saturating_mul(min_item_size) > self.buf.len() {
            return Err(DecodeError::Truncated { what });
        }
        Ok(n)
    }

    /// The rest of the message.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}
