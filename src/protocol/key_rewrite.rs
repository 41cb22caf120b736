//! Rewrites the BackendKeyData of a proxied upstream: the client gets the gateway's own process
//! id and secret (so its CancelRequests come to us, and it never learns the upstream's key), and
//! the upstream's key is captured for forwarding cancels. Sans-IO and in place: feed it every
//! chunk the upstream sends, in order, until [`KeyRewriter::is_done`]; message boundaries may
//! fall anywhere. It stops at the first ReadyForQuery, before which every BackendKeyData comes.
//! If what went upstream began with an encryption request, the upstream's one-byte answer comes
//! first: `S`/`G` (an encrypted stream follows: nothing to rewrite) or `N` (then messages).

/// The key an upstream gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamBackendKey {
    pub process_id: i32,
    pub secret_key: Vec<u8>,
}

#[derive(Debug)]
pub struct KeyRewriter {
    /// Our process id and secret key, as the 8 bytes of a protocol 3.0 BackendKeyData body.
    ours: [u8; 8],
    header: [u8; 5],
    header_len: usize,
    /// Body bytes of the current message still to come.
    body_left: usize,
    /// Inside a BackendKeyData body: the upstream's bytes read so far.
    key: Option<Vec<u8>>,
    /// A first message header was read (one-byte encryption answers come before it).
    started: bool,
    done: bool,
}

impl KeyRewriter {
    pub fn new(process_id: i32, secret_key: [u8; 4]) -> Self {
        let mut ours = [0; 8];
        ours[..4].copy_from_slice(&process_id.to_be_bytes());
        ours[4..].copy_from_slice(&secret_key);
        Self { ours, header: [0; 5], header_len: 0, body_left: 0, key: None, started: false, done: false }
    }

    /// Past the first ReadyForQuery: nothing left to rewrite, stop feeding.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Rewrites the BackendKeyData bytes in `chunk`; returns the upstream's key once its
    /// message is complete.
    pub fn rewrite(&mut self, chunk: &mut [u8]) -> Option<UpstreamBackendKey> {
        let mut found = None;
        let mut i = 0;
        while i < chunk.len() && !self.done {
            if let Some(key) = &mut self.key {
                let at = key.len();
                key.push(chunk[i]);
                chunk[i] = self.ours[at];
                i += 1;
                self.body_left -= 1;
                if self.body_left == 0 {
                    let key = self.key.take().unwrap_or_default();
                    found = Some(UpstreamBackendKey {
                        process_id: i32::from_be_bytes([key[0], key[1], key[2], key[3]]),
                        secret_key: key[4..].to_vec(),
                    });
                }
            } else if self.body_left > 0 {
                let skip = self.body_left.min(chunk.len() - i);
                i += skip;
                self.body_left -= skip;
            } else {
                if !self.started && self.header_len == 0 && matches!(chunk[i], b'S' | b'G') {
                    // The upstream accepted encryption: what follows is not ours to read.
                    self.done = true;
                    break;
                }
                self.header[self.header_len] = chunk[i];
                self.header_len += 1;
                i += 1;
                if self.header_len == 5 {
                    self.header_len = 0;
                    let [tag, a, b, c, d] = self.header;
                    let declared = i32::from_be_bytes([a, b, c, d]);
                    if !self.started && tag == b'N' && !(4..=1 << 20).contains(&declared) {
                        // Not a NoticeResponse: a lone 'N' refusing encryption. The four bytes
                        // after it begin the next answer.
                        self.header = [a, b, c, d, 0];
                        self.header_len = 4;
                        if matches!(a, b'S' | b'G') {
                            self.done = true;
                        }
                        continue;
                    }
                    self.started = true;
                    let body = usize::try_from(declared).unwrap_or(0).saturating_sub(4);
                    match tag {
                        // A 3.0 key is 4 bytes; longer (3.2) keys are left as they are, since
                        // clients are negotiated down to 3.0 and never see them.
                        b'K' if body == 8 => self.key = Some(Vec::with_capacity(8)),
                        b'Z' => self.done = true,
                        _ => {}
                    }
                    self.body_left = body;
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup_answer() -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"R\x00\x00\x00\x08\x00\x00\x00\x00");
        out.extend_from_slice(b"S\x00\x00\x00\x08a\x00b\x00");
        out.extend_from_slice(b"K\x00\x00\x00\x0c\x00\x00\x30\x39\xde\xad\xbe\xef");
        out.extend_from_slice(b"Z\x00\x00\x00\x05I");
        out.extend_from_slice(b"K\x00\x00\x00\x0c\x00\x00\x00\x01\x01\x01\x01\x01");
        out
    }

    #[test]
    fn the_key_is_replaced_wherever_the_chunks_split() {
        let original = startup_answer();
        for split in 0..original.len() {
            let mut rewriter = KeyRewriter::new(7, [1, 2, 3, 4]);
            let mut data = original.clone();
            let (a, b) = data.split_at_mut(split);
            let found = [rewriter.rewrite(a), rewriter.rewrite(b)].into_iter().flatten().collect::<Vec<_>>();
            assert_eq!(found, vec![UpstreamBackendKey { process_id: 12345, secret_key: vec![0xde, 0xad, 0xbe, 0xef] }]);
            let mut expected = original.clone();
            let at = expected.windows(5).position(|w| w == b"K\x00\x00\x00\x0c").unwrap() + 5;
            expected[at..at + 8].copy_from_slice(&[0, 0, 0, 7, 1, 2, 3, 4]);
            assert_eq!(data, expected, "split at {split}");
            assert!(rewriter.is_done(), "stops at ReadyForQuery; what follows is not touched");
        }
    }

    #[test]
    fn one_byte_encryption_answers_come_first() {
        // 'N' (encryption refused), then the startup answer: the key is still found.
        let mut data = [b"N".as_slice(), &startup_answer()].concat();
        let mut rewriter = KeyRewriter::new(7, [1, 2, 3, 4]);
        assert!(rewriter.rewrite(&mut data).is_some());
        // 'S': TLS passes through untouched, whatever it looks like.
        let original = [b"S".as_slice(), &startup_answer()].concat();
        let mut data = original.clone();
        let mut rewriter = KeyRewriter::new(7, [1, 2, 3, 4]);
        assert_eq!(rewriter.rewrite(&mut data), None);
        assert_eq!(data, original);
        assert!(rewriter.is_done());
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let mut rewriter = KeyRewriter::new(7, [1, 2, 3, 4]);
        let mut data = b"X\xff\xff\xff\xffK\x00\x00\x00\x00".to_vec();
        assert_eq!(rewriter.rewrite(&mut data), None);
        let mut rewriter = KeyRewriter::new(7, [1, 2, 3, 4]);
        let mut data = b"K\x00\x00\x00\x02K\x00\x00\x00\x0c\x00".to_vec();
        assert_eq!(rewriter.rewrite(&mut data), None);
    }
}
