//! The DHCPv4 client state machine (`net::dhcp`) fed hostile replies: never panics, always ends
//! (bound or failed) within its attempt budget, and everything it sends encodes.
//!
//! Input: a sequence of `u16 length (big endian) + packet`; length 0 is a timeout. Packets of
//! BOOTP size get the client's current xid, our MAC and the magic cookie patched in, so that
//! mutations reach the options instead of being dropped as someone else's traffic.
#![no_main]

use kubejoin::net::dhcp::{encode, Action, DhcpClient, DhcpTiming, Input};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn check(action: &Action) -> bool {
    match action {
        Action::Send { message, .. } => {
            assert!(encode(message).is_ok(), "{message:?}");
            false
        }
        Action::Wait => false,
        Action::Bound(_) | Action::Failed(_) => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut client = DhcpClient::new(MAC, Some("node-1".into()), DhcpTiming::default(), 7);
    let mut now = Duration::ZERO;
    if check(&client.start(now)) {
        return;
    }
    let mut rest = data;
    let mut steps = 0;
    while rest.len() >= 2 && steps < 64 {
        steps += 1;
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (packet, tail) = rest[2..].split_at(len);
        rest = tail;
        now += Duration::from_millis(250);
        let action = if packet.is_empty() {
            client.handle(Input::Timeout, now)
        } else {
            let mut p = packet.to_vec();
            if p.len() >= 240 {
                p[4..8].copy_from_slice(&client.xid().to_be_bytes());
                p[28..34].copy_from_slice(&MAC);
                p[236..240].copy_from_slice(&[99, 130, 83, 99]);
            }
            client.handle(Input::Packet(&p), now)
        };
        if check(&action) {
            return;
        }
    }
    // Out of input: the timeouts alone must end the exchange.
    for _ in 0..1000 {
        now += Duration::from_secs(1);
        if check(&client.handle(Input::Timeout, now)) {
            return;
        }
    }
    panic!("the DHCP exchange did not end after 1000 timeouts");
});
