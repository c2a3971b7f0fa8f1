use super::*;
use crate::error::Classify;
use crate::source::metadata::mock::{closed_url, transport, MockReply, MockServer};
use std::sync::atomic::{AtomicUsize, Ordering};

fn imds(
    user_data: &'static str,
) -> impl Fn(&crate::source::metadata::mock::MockRequest) -> MockReply {
    move |r| match (r.method.as_str(), r.path.as_str()) {
        ("PUT", "/latest/api/token") if r.header(TTL_HEADER) == Some("21600") => {
            MockReply::ok("tok-1")
        }
        ("PUT", _) => MockReply::status(400),
        (_, _) if r.header(TOKEN_HEADER) != Some("tok-1") => MockReply::status(401),
        ("GET", "/latest/user-data") => MockReply::ok(user_data),
        ("GET", "/latest/meta-data/local-hostname") => MockReply::ok("ip-10-0-0-7.ec2.internal\n"),
        ("GET", "/latest/meta-data/local-ipv4") => MockReply::ok("10.0.0.7"),
        _ => MockReply::status(404),
    }
}

#[tokio::test]
async fn imdsv2_token_then_user_data_and_facts() {
    let srv = MockServer::start(imds("endpoint: 10.0.0.1:6443\n")).await;
    let aws = Aws::new(&srv.url(), &closed_url().await, transport(), Retry::none());
    let ud = aws.user_data().await.unwrap();
    assert_eq!(ud.bytes, b"endpoint: 10.0.0.1:6443\n");
    assert_eq!(ud.location, format!("{}/latest/user-data", srv.url()));
    let facts = aws.node_facts().await.unwrap();
    assert_eq!(facts.hostname.as_deref(), Some("ip-10-0-0-7.ec2.internal"));
    assert_eq!(facts.ipv4, Some("10.0.0.7".parse().unwrap()));
    assert_eq!(facts.ipv6, None, "404 for ipv6 means none");
    // One token for the whole session, sent on every GET.
    let hits = srv.hits();
    assert_eq!(
        hits.iter().filter(|h| h.starts_with("PUT")).count(),
        1,
        "{hits:?}"
    );
    assert!(srv
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .all(|r| r.header(TOKEN_HEADER) == Some("tok-1")));
}

#[tokio::test]
async fn renews_the_token_once_on_401() {
    let puts = Arc::new(AtomicUsize::new(0));
    let p = puts.clone();
    let srv = MockServer::start(move |r| match r.method.as_str() {
        "PUT" => MockReply::ok(format!("tok-{}", p.fetch_add(1, Ordering::SeqCst) + 1)),
        // The first token "expired": only the second is accepted.
        _ if r.header(TOKEN_HEADER) == Some("tok-2") => MockReply::ok("user-data"),
        _ => MockReply::status(401),
    })
    .await;
    let aws = Aws::new(&srv.url(), &srv.url(), transport(), Retry::none());
    assert_eq!(aws.user_data().await.unwrap().bytes, b"user-data");
    assert_eq!(puts.load(Ordering::SeqCst), 2);
    assert_eq!(
        srv.hits(),
        [
            "PUT /latest/api/token",
            "GET /latest/user-data",
            "PUT /latest/api/token",
            "GET /latest/user-data"
        ]
    );
}

#[tokio::test]
async fn a_second_401_is_refused_with_the_hop_limit_hint() {
    let srv = MockServer::start(|r| {
        if r.method == "PUT" {
            MockReply::ok("t")
        } else {
            MockReply::status(401)
        }
    })
    .await;
    let aws = Aws::new(&srv.url(), &srv.url(), transport(), Retry::none());
    let e = aws.user_data().await.unwrap_err();
    assert!(
        matches!(e, MetadataError::ImdsRefused { status: 401, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains(&format!("{}/latest/user-data", srv.url())),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("HttpPutResponseHopLimit"));
}

#[tokio::test]
async fn token_403_is_refused_and_never_falls_back_to_imdsv1() {
    let srv = MockServer::start(|r| {
        if r.method == "PUT" {
            MockReply::status(403)
        } else {
            MockReply::ok("v1 data")
        }
    })
    .await;
    let aws = Aws::new(&srv.url(), &srv.url(), transport(), Retry::none());
    let e = aws.user_data().await.unwrap_err();
    assert!(
        matches!(e, MetadataError::ImdsRefused { status: 403, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("/latest/api/token"), "{e}");
    assert!(e
        .hint()
        .unwrap()
        .contains("HttpPutResponseHopLimit to 2 or more"));
    assert!(
        srv.hits().iter().all(|h| h.starts_with("PUT")),
        "no token-less GET: {:?}",
        srv.hits()
    );
}

#[tokio::test]
async fn imdsv1_only_service_is_an_error_not_a_fallback() {
    // An IMDSv1-only (or non-AWS) server does not know the token path.
    let srv = MockServer::start(|r| {
        if r.method == "PUT" {
            MockReply::status(404)
        } else {
            MockReply::ok("v1")
        }
    })
    .await;
    let aws = Aws::new(&srv.url(), &srv.url(), transport(), Retry::none());
    let e = aws.user_data().await.unwrap_err();
    assert!(matches!(e, MetadataError::ImdsToken { .. }), "{e:?}");
    assert!(e.to_string().contains("IMDSv1 is never used"), "{e}");
    assert!(srv.hits().iter().all(|h| h.starts_with("PUT")));
}

#[tokio::test]
async fn token_put_that_stalls_times_out_with_the_hint() {
    // With hop limit 1 inside a container the PUT's answer never arrives.
    let srv = MockServer::start(|r| {
        if r.method == "PUT" {
            MockReply::Stall
        } else {
            MockReply::ok("x")
        }
    })
    .await;
    let started = Instant::now();
    let aws = Aws::new(&srv.url(), &closed_url().await, transport(), Retry::none());
    let e = aws.user_data().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    let msg = e.to_string();
    assert!(
        msg.contains("timed out") && msg.contains("/latest/api/token"),
        "{msg}"
    );
    assert!(
        msg.contains("IPv6 endpoint"),
        "both endpoints are reported: {msg}"
    );
    assert!(e.hint().unwrap().contains("HttpPutResponseHopLimit"));
}

#[tokio::test]
async fn ipv6_endpoint_wins_when_ipv4_is_unreachable() {
    let v6 = MockServer::start(imds("from v6")).await;
    let aws = Aws::new(&closed_url().await, &v6.url(), transport(), Retry::none());
    let ud = aws.user_data().await.unwrap();
    assert_eq!(ud.bytes, b"from v6");
    assert!(ud.location.starts_with(&v6.url()));
}

#[tokio::test]
async fn ipv4_answer_does_not_wait_for_a_stalled_ipv6() {
    let v4 = MockServer::start(imds("from v4")).await;
    let v6 = MockServer::start(|_| MockReply::Stall).await;
    let started = Instant::now();
    let aws = Aws::new(&v4.url(), &v6.url(), transport(), Retry::none());
    assert_eq!(aws.user_data().await.unwrap().bytes, b"from v4");
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn missing_user_data_names_provider_and_url() {
    let srv2 = MockServer::start(|r| {
        if r.method == "PUT" {
            MockReply::ok("t")
        } else {
            MockReply::status(404)
        }
    })
    .await;
    let aws = Aws::new(&srv2.url(), &srv2.url(), transport(), Retry::none());
    let e = aws.user_data().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no user-data: provider aws at {}/latest/user-data returned 404",
            srv2.url()
        )
    );
}

#[tokio::test]
async fn oversized_and_truncated_user_data() {
    let big = MockServer::start(|r| {
        if r.method == "PUT" {
            MockReply::ok("t")
        } else {
            MockReply::ok(vec![b'a'; MAX_USER_DATA + 1])
        }
    })
    .await;
    let aws = Aws::new(&big.url(), &big.url(), transport(), Retry::none());
    let e = aws.user_data().await.unwrap_err();
    assert!(
        matches!(
            e,
            MetadataError::TooLarge {
                limit: MAX_USER_DATA,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("provider aws"), "{e}");

    let cut = MockServer::start(|r| {
        if r.method == "PUT" {
            MockReply::ok("t")
        } else {
            MockReply::Truncated {
                declared: 100,
                body: b"endpoint: 1".to_vec(),
            }
        }
    })
    .await;
    let aws = Aws::new(&cut.url(), &cut.url(), transport(), Retry::none());
    let e = aws.user_data().await.unwrap_err();
    assert!(matches!(e, MetadataError::Transfer { .. }), "{e:?}");
}

#[tokio::test]
async fn retries_transient_failures_on_the_schedule() {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let srv = MockServer::start(move |r| {
        if r.method == "PUT" && c.fetch_add(1, Ordering::SeqCst) < 2 {
            MockReply::status(503)
        } else if r.method == "PUT" {
            MockReply::ok("t")
        } else {
            MockReply::ok("ok")
        }
    })
    .await;
    let retry = Retry {
        delays: vec![Duration::from_millis(10); 3],
    };
    let aws = Aws::new(&srv.url(), &srv.url(), transport(), retry);
    assert_eq!(aws.user_data().await.unwrap().bytes, b"ok");
    assert_eq!(n.load(Ordering::SeqCst), 3);
}
