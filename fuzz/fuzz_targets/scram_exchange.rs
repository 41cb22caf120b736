//! The SCRAM exchange against hostile client messages: whatever the SASLInitialResponse and
//! SASLResponse bodies hold (lengths, nonces, channel-binding data, attributes), the exchange
//! never panics, fails only with PostgreSQL's codes, and succeeds only with the right proof.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_gateway_native::auth::{AuthStep, ScramExchange, ScramSecret, ScramServer, SecretSource};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    // The input is split into up to three client messages at 0xff bytes.
    let mut messages = rest.split(|&b| b == 0xff);
    let channel_binding = (flags & 1 != 0).then(|| vec![0xab; 32]);
    let server = ScramServer::new([7; 32]);
    let (mut exchange, _) = ScramExchange::start("bob", channel_binding, &[1; 18]);
    let found = match flags >> 1 & 3 {
        0 => None,
        1 => Some(SecretSource::Password("pencil".into())),
        _ => Some(SecretSource::Verifier(ScramSecret::from_password("pencil", b"salt", 1))),
    };
    let mut found = Some(found);
    for _ in 0..3 {
        let Some(message) = messages.next() else { return };
        let mut step = exchange.receive(message);
        if step == AuthStep::LookupSecret {
            step = exchange.secret(found.take().flatten(), &server);
        }
        match step {
            AuthStep::Fail(err) => {
                assert!(["08P01", "28P01", "28000", "0A000"].contains(&err.code.as_ref()), "{err:?}");
                return;
            }
            // Nobody can prove a secret this input does not know... except with the right
            // password, which a fuzzer does not find: success means a bug.
            AuthStep::SaslOk(_) | AuthStep::Ok => panic!("authenticated from fuzz input"),
            _ => {}
        }
    }
});
