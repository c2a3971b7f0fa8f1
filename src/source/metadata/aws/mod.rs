//! Amazon EC2: IMDSv2 only.
//!
//! A session token is requested with `PUT /latest/api/token` (header
//! `X-aws-ec2-metadata-token-ttl-seconds`) and sent as `X-aws-ec2-metadata-token` on every
//! `GET`. There is deliberately **no fallback to IMDSv1** (token-less GETs): IMDSv1 is what SSRF
//! attacks use, and an instance that requires tokens would answer it with 401 anyway, hiding the
//! real problem. The IPv4 (`169.254.169.254`) and IPv6 (`[fd00:ec2::254]`, Nitro instances with
//! the IPv6 endpoint enabled) services are raced for the token; the first to answer serves the
//! rest of the session. A 401 on a GET means the token expired or IMDS restarted: one new token
//! is fetched and the GET retried once.

#[cfg(test)]
mod mock_tests;

use super::http::{Method, Request, Response, Retry, Transport, TransportError};
use super::{
    join_url, user_data_from, Context, Http, MetadataError, NodeFacts, Platform, Provider, UserData,
};
use super::{MAX_FACT, MAX_USER_DATA};
use futures_util::future::BoxFuture;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEFAULT_IPV4: &str = "http://169.254.169.254";
pub const DEFAULT_IPV6: &str = "http://[fd00:ec2::254]";
/// The Amazon Time Sync Service: an NTP server on every instance's link-local network (Nitro
/// instances also answer on `[fd00:ec2::123]`). A default only, like the metadata bases:
/// [`super::Endpoints::aws_time`] replaces it.
pub const TIME_SERVER: &str = "169.254.169.123";
pub const TOKEN_PATH: &str = "/latest/api/token";
pub const USER_DATA_PATH: &str = "/latest/user-data";
pub const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// Six hours, the maximum; one boot needs a few seconds of it.
const TOKEN_TTL: Duration = Duration::from_secs(21600);
/// Renew a token this close to its expiry rather than have a request race it.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Session {
    base: String,
    token: String,
    expires: Instant,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session {{ base: {}, token: <redacted> }}", self.base)
    }
}

/// Why one endpoint gave no token.
enum TokenFail {
    Status(u16),
    Transport(TransportError),
}

impl fmt::Display for TokenFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenFail::Status(s) => write!(f, "HTTP {s}"),
            TokenFail::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// The EC2 provider.
#[derive(Debug)]
pub struct Aws {
    http: Http,
    ipv4: String,
    ipv6: String,
    session: Mutex<Option<Session>>,
}

pub fn build(ctx: &Context) -> Box<dyn Provider> {
    Box::new(Aws::new(
        &ctx.endpoints.aws_ipv4,
        &ctx.endpoints.aws_ipv6,
        ctx.transport.clone(),
        ctx.retry.clone(),
    ))
}

impl Aws {
    /// `ipv4`/`ipv6`: base URLs of the two services (defaults [`DEFAULT_IPV4`], [`DEFAULT_IPV6`]).
    pub fn new(ipv4: &str, ipv6: &str, transport: Arc<dyn Transport>, retry: Retry) -> Self {
        Self {
            http: Http::new(Platform::Aws, transport, retry),
            ipv4: ipv4.trim_end_matches('/').to_string(),
            ipv6: ipv6.trim_end_matches('/').to_string(),
            session: Mutex::new(None),
        }
    }

    async fn put_token(&self, base: &str) -> Result<Session, TokenFail> {
        let req = Request {
            method: Method::Put,
            url: join_url(base, TOKEN_PATH),
            headers: vec![(TTL_HEADER, TOKEN_TTL.as_secs().to_string())],
            limit: MAX_FACT,
        };
        let started = Instant::now();
        let r = super::http::fetch(&*self.http.transport, &req, &self.http.retry)
            .await
            .map_err(TokenFail::Transport)?;
        if r.status != 200 {
            return Err(TokenFail::Status(r.status));
        }
        let token = String::from_utf8(r.body)
            .map_err(|_| {
                TokenFail::Transport(TransportError::Body("the session token is not text".into()))
            })?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(TokenFail::Transport(TransportError::Body(
                "empty session token".into(),
            )));
        }
        Ok(Session {
            base: base.to_string(),
            token,
            expires: started + TOKEN_TTL,
        })
    }

    /// Races the two services for a token; the first success wins.
    async fn new_session(&self) -> Result<Session, MetadataError> {
        if self.ipv4 == self.ipv6 {
            return self
                .put_token(&self.ipv4)
                .await
                .map_err(|f| self.token_error(f, None));
        }
        let v4 = self.put_token(&self.ipv4);
        let v6 = self.put_token(&self.ipv6);
        tokio::pin!(v4, v6);
        let (mut e4, mut e6) = (None, None);
        while e4.is_none() || e6.is_none() {
            tokio::select! {
                // IPv4 first when both are ready (replays, tests): deterministic results.
                biased;
                r = &mut v4, if e4.is_none() => match r {
                    Ok(s) => return Ok(s),
                    Err(e) => e4 = Some(e),
                },
                r = &mut v6, if e6.is_none() => match r {
                    Ok(s) => return Ok(s),
                    Err(e) => e6 = Some(e),
                },
            }
        }
        match (e4, e6) {
            (Some(a), Some(b)) => Err(self.token_error(a, Some(b))),
            // Unreachable: the loop ends only when both failed.
            _ => Err(MetadataError::ImdsToken {
                provider: Platform::Aws,
                url: join_url(&self.ipv4, TOKEN_PATH),
                reason: "no endpoint answered".into(),
            }),
        }
    }

    fn token_error(&self, v4: TokenFail, v6: Option<TokenFail>) -> MetadataError {
        let url4 = join_url(&self.ipv4, TOKEN_PATH);
        let url6 = join_url(&self.ipv6, TOKEN_PATH);
        for (url, f) in [(&url4, Some(&v4)), (&url6, v6.as_ref())] {
            if let Some(TokenFail::Status(status @ (401 | 403))) = f {
                return MetadataError::ImdsRefused {
                    provider: Platform::Aws,
                    url: url.clone(),
                    status: *status,
                };
            }
        }
        let reason = match &v6 {
            Some(b) => format!("{v4}; the IPv6 endpoint {url6} also failed: {b}"),
            None => v4.to_string(),
        };
        MetadataError::ImdsToken {
            provider: Platform::Aws,
            url: url4,
            reason,
        }
    }

    async fn session(&self, renew: bool) -> Result<Session, MetadataError> {
        if !renew {
            let cached = self.session.lock().ok().and_then(|s| s.clone());
            if let Some(s) = cached {
                if s.expires.saturating_duration_since(Instant::now()) > RENEW_MARGIN {
                    return Ok(s);
                }
            }
        }
        let s = self.new_session().await?;
        if let Ok(mut slot) = self.session.lock() {
            *slot = Some(s.clone());
        }
        Ok(s)
    }

    /// A GET with the session token; on 401 one new token and one more try.
    async fn get(&self, path: &str, limit: usize) -> Result<(String, Response), MetadataError> {
        let mut renewed = false;
        loop {
            let s = self.session(renewed).await?;
            let url = join_url(&s.base, path);
            let r = self
                .http
                .send(&Request::get(&url, limit).header(TOKEN_HEADER, s.token.as_str()))
                .await?;
            match r.status {
                401 if !renewed => renewed = true,
                401 | 403 => {
                    return Err(MetadataError::ImdsRefused {
                        provider: Platform::Aws,
                        url,
                        status: r.status,
                    })
                }
                _ => return Ok((url, r)),
            }
        }
    }

    async fn text(&self, path: &str) -> Result<(String, Option<String>), MetadataError> {
        let (url, r) = self.get(path, MAX_FACT).await?;
        match r.status {
            200 => Ok((
                url,
                Some(String::from_utf8_lossy(&r.body).trim().to_string()),
            )),
            404 => Ok((url, None)),
            status => Err(MetadataError::Status {
                provider: Platform::Aws,
                url,
                status,
            }),
        }
    }
}

impl Provider for Aws {
    fn platform(&self) -> Platform {
        Platform::Aws
    }

    fn user_data(&self) -> BoxFuture<'_, Result<UserData, MetadataError>> {
        Box::pin(async move {
            let (url, r) = self.get(USER_DATA_PATH, MAX_USER_DATA).await?;
            user_data_from(Platform::Aws, &url, r)
        })
    }

    fn node_facts(&self) -> BoxFuture<'_, Result<NodeFacts, MetadataError>> {
        Box::pin(async move {
            let (_, hostname) = self.text("/latest/meta-data/local-hostname").await?;
            let (u4, v4) = self.text("/latest/meta-data/local-ipv4").await?;
            let (u6, v6) = self.text("/latest/meta-data/ipv6").await?;
            Ok(NodeFacts {
                hostname: hostname.filter(|h| !h.is_empty()),
                ipv4: self.http.ip::<Ipv4Addr>(&u4, v4)?,
                ipv6: self.http.ip::<Ipv6Addr>(&u6, v6)?,
            })
        })
    }
}
