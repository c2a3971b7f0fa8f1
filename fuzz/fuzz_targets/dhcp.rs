//! The DHCPv4 client state machine (`net::dhcp`) fed hostile replies: never panics, always ends
//! (bound or failed) within its attempt budget, and everything it sends encodes.
//!
//! Input: a sequence of `u16 length (big endian) + packet`; length 0 is a timeout. Packets of
//! BOOTP size get the client's current xid, our MAC and the magic cookie patched in, so that
//! mutations reach the options instead of being dropped as someone else's traffic.
//!
//! KNOWN ISSUE (found by this target, reported; `src/net/dhcp.rs` is not this crate's to fix):
//! dhcproto 0.15 `debug_assert!`s option lengths it does not validate (80 RapidCommit, 81
//! ClientFQDN, 94, 151–155 Bulk Leasequery): one datagram to port 68 from anyone on the link,
//! e.g. an OFFER carrying option `152, len 0`, panics a build with debug assertions (tests, dev
//! builds); release builds misparse the options instead. Until `DhcpClient::handle` guards the
//! decoding, a panic raised *inside dhcproto's option decoder* ends this input quietly; any other
//! panic is still a crash. Delete `tolerate_dhcproto` once the guard is in.
#![no_main]

use kubejoin::net::dhcp::{encode, Action, DhcpClient, DhcpTiming, Input};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

thread_local! {
    static PANIC_AT: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// `client.handle(input)`, with the known dhcproto panic (see the module docs) turned into
/// `None`; every other panic is raised again as a crash.
fn tolerate_dhcproto(client: &mut DhcpClient, input: Input<'_>, now: Duration) -> Option<Action> {
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| l.file().to_string())
            .unwrap_or_default();
        PANIC_AT.with(|p| *p.borrow_mut() = Some((at, info.to_string())));
    }));
    let result = catch_unwind(AssertUnwindSafe(|| client.handle(input, now)));
    std::panic::set_hook(fuzzer_hook);
    match result {
        Ok(action) => Some(action),
        Err(_) => {
            let (at, what) = PANIC_AT.with(|p| p.borrow_mut().take()).unwrap_or_default();
            if at.contains("dhcproto") && at.ends_with("v4/options.rs") {
                None
            } else {
                panic!("{what}");
            }
        }
    }
}

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
            match tolerate_dhcproto(&mut client, Input::Packet(&p), now) {
                Some(action) => action,
                None => return,
            }
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
