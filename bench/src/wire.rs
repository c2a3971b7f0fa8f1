//! Section 4, on the wire: a byte-counting TCP relay on loopback between kubejoin and a second
//! control plane whose cluster-info names the relay as `server:`, so every connection of the
//! join (both discovery fetches and everything after) crosses it. Counts TCP payload bytes in
//! each direction (TLS records: handshakes, HTTP headers and bodies) and connections per join.
//! Separate from the latency runs, so the relay's hop does not distort those.

use crate::join::{join_args, requests_of, run_join};
use crate::stats;
use crate::{err, Error};
use kubejoin_testcp::Config;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, TcpStream};

/// One relayed connection.
#[derive(Debug, Clone)]
struct Conn {
    opened: SystemTime,
    /// client -> server bytes.
    up: u64,
    /// server -> client bytes.
    down: u64,
}

#[derive(Debug, Default)]
struct Relay {
    conns: Mutex<Vec<Conn>>,
    active: AtomicUsize,
}

async fn pump(relay: Arc<Relay>, mut client: TcpStream, upstream: SocketAddr) {
    let opened = SystemTime::now();
    relay.active.fetch_add(1, Ordering::SeqCst);
    let (up, down) = match TcpStream::connect(upstream).await {
        Ok(mut server) => {
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            tokio::io::copy_bidirectional(&mut client, &mut server)
                .await
                .unwrap_or((0, 0))
        }
        Err(_) => (0, 0),
    };
    if let Ok(mut c) = relay.conns.lock() {
        c.push(Conn { opened, up, down });
    }
    relay.active.fetch_sub(1, Ordering::SeqCst);
}

/// Runs `runs` joins through the relay; returns bytes and connections per join.
pub fn run(
    bin: &Path,
    work: &Path,
    runs: usize,
    rt: &tokio::runtime::Runtime,
) -> Result<Value, Error> {
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| err(format!("binding the relay: {e}")))?;
    let relay_addr = listener
        .local_addr()
        .map_err(|e| err(format!("relay address: {e}")))?;
    let cp = kubejoin_testcp::start(Config {
        server_url: Some(format!("https://{relay_addr}")),
        ..Config::default()
    })
    .map_err(|e| err(format!("starting the test control plane: {e}")))?;
    let upstream = cp.addr();
    let relay = Arc::new(Relay::default());
    let accept_relay = relay.clone();
    let accept = rt.spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(pump(accept_relay.clone(), client, upstream));
        }
    });

    let endpoint = relay_addr.to_string();
    let mut per_join = Vec::new();
    for i in 0..runs + 1 {
        let node = format!("wire-{i}");
        let root = work.join(format!("wire-{i}"));
        let log = work.join(format!("wire-{i}.log"));
        let run = run_join(
            bin,
            &join_args(&cp, &endpoint, &node, &root),
            &root,
            &log,
            &[],
        )?;
        if run.exit_code != Some(0) {
            let tail = std::fs::read_to_string(&run.log).unwrap_or_default();
            return Err(err(format!("join through the relay failed:\n{tail}")));
        }
        // Wait (bounded) for the relay to see every connection closed.
        let t0 = Instant::now();
        while relay.active.load(Ordering::SeqCst) > 0 && t0.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir_all(&root);
        if i == 0 {
            continue; // warm-up
        }
        per_join.push(run);
    }
    accept.abort();
    std::thread::sleep(Duration::from_millis(100));
    let conns = relay.conns.lock().map(|c| c.clone()).unwrap_or_default();
    let all = cp.requests();
    let (mut n_conns, mut up, mut down, mut reqs, mut body) =
        (vec![], vec![], vec![], vec![], vec![]);
    for run in &per_join {
        let mine: Vec<&Conn> = conns
            .iter()
            .filter(|c| c.opened >= run.wall_start && c.opened <= run.wall_end)
            .collect();
        n_conns.push(mine.len() as f64);
        up.push(mine.iter().map(|c| c.up as f64).sum::<f64>());
        down.push(mine.iter().map(|c| c.down as f64).sum::<f64>());
        let r = requests_of(&all, run);
        reqs.push(r.len() as f64);
        body.push(
            r.iter()
                .map(|q| (q.request_bytes + q.response_bytes) as f64)
                .sum::<f64>(),
        );
    }
    let total: Vec<f64> = up.iter().zip(&down).map(|(a, b)| a + b).collect();
    Ok(json!({
        "runs": per_join.len(),
        "tcp_connections_per_join": stats::summary(&n_conns),
        "tcp_bytes_up_per_join": stats::summary(&up),
        "tcp_bytes_down_per_join": stats::summary(&down),
        "tcp_bytes_per_join": stats::summary(&total),
        "requests_per_join": stats::summary(&reqs),
        "body_bytes_per_join": stats::summary(&body),
    }))
}
