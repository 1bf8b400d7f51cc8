//! Limits before work: what the service refuses before it spends a database connection, a write
//! lock or memory on a request.
//!
//! - **Bodies** are limited while they are read, per route: [`BODY_LIMIT`] for the API,
//!   [`SCIM_BODY_LIMIT`] for the HR feed (a group's members), and the agent's report routes their
//!   own (`agent::BATCH_BODY_LIMIT`). A body over its limit is a 413 (`body_too_large`), and a
//!   device-signed request names a provisioned laptop before its body is read at all.
//! - **Time**: a request that runs longer than [`Settings::request_timeout`] is dropped with a
//!   503 (`request_timeout`); its transaction is rolled back, so it changed nothing.
//! - **Load**: at most [`Settings::max_in_flight`] requests are served at once; more are refused
//!   at once with a 503 (`service_busy`) and `Retry-After`, instead of queueing without bound.
//! - **Open routes**, the ones that answer a caller who has not yet proved anything (provisioning
//!   a laptop with a one-time token, redeeming a ticket or link, signing in, the console's first
//!   setup), take at most [`Settings::max_open_in_flight`] of those slots and are rate-limited per
//!   address ([`Settings::open_per_minute`]): a flood of guesses gets 429s (`rate_limited`) and
//!   cannot hold the slots, the pool or SQLite's write lock that the HR feed's deactivations and
//!   the agents' reports need.
//!
//! The address is the TCP peer's; behind a TLS-terminating proxy (`--behind-tls-proxy`) it is the
//! one the proxy appended last to `X-Forwarded-For`, since the peer is then always the proxy.
//! Calls made in-process (no socket, so no address) are not rate-limited.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use keywarden_protocol::ErrorCode;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::state::{AppState, Settings};

/// Largest body of an API request but for the HR feed and the agents' reports.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Largest SCIM request body (a group with its members).
pub const SCIM_BODY_LIMIT: usize = 1024 * 1024;

/// The routes that answer callers who have proved nothing yet, each with a one-time secret or a
/// passkey assertion to check: rate-limited per address and held to a share of the slots.
pub const OPEN_ROUTES: &[&str] = &[
    "/api/v1/agent/provision",
    "/api/v1/console/setup/begin",
    "/api/v1/console/setup/finish",
    "/api/v1/me/session/ticket",
    "/api/v1/me/session/link",
    "/api/v1/me/sign-in/begin",
    "/api/v1/me/sign-in/finish",
];

/// The limiters of one service process (each replica limits its own share).
pub struct Limits {
    all: Arc<Semaphore>,
    open: Arc<Semaphore>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    timeout: Duration,
    behind_proxy: bool,
    /// When the per-address limiter was last swept.
    swept: std::sync::Mutex<std::time::Instant>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("in_flight_free", &self.all.available_permits())
            .field("open_free", &self.open.available_permits())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Keyed limiters forget addresses quiet long enough to be full again once this many are held,
/// at most once per [`SWEEP_EVERY`]: a sweep walks every address, so it must not run on every
/// request of a flood from more addresses than this.
const FORGET_AFTER: usize = 10_000;

/// Least time between two sweeps of the per-address limiter.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Limits {
    /// The limiters for `settings`.
    pub fn new(settings: &Settings) -> Limits {
        let per_address = NonZeroU32::new(settings.open_per_minute).map(|rate| {
            let burst = NonZeroU32::new(settings.open_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Limits {
            all: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            open: Arc::new(Semaphore::new(settings.max_open_in_flight.max(1))),
            per_address,
            timeout: settings.request_timeout,
            behind_proxy: settings.behind_proxy,
            swept: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    /// The address a request is counted against: the peer, or behind a proxy the address the
    /// proxy appended to `X-Forwarded-For`. IPv6 addresses count per /64 (one host's range).
    fn address(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let forwarded = || {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .and_then(|a| a.trim().parse::<IpAddr>().ok())
        };
        let ip = if self.behind_proxy {
            forwarded().or(peer.map(|p| p.ip()))
        } else {
            peer.map(|p| p.ip())
        }?;
        Some(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        })
    }

    /// `Err` when `address` spent its allowance: how long until it may try again.
    fn spend(&self, address: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.per_address else {
            return Ok(());
        };
        if limiter.len() > FORGET_AFTER {
            // try_lock: one request sweeps; the others go on at once.
            if let Ok(mut swept) = self.swept.try_lock() {
                if swept.elapsed() >= SWEEP_EVERY {
                    limiter.retain_recent();
                    *swept = std::time::Instant::now();
                }
            }
        }
        limiter
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

fn busy() -> Error {
    Error::limited(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServiceBusy,
        "the service is serving as many requests as it takes at once; try again in a moment",
        Some(Duration::from_secs(1)),
    )
}

/// The middleware: the load limit, the time limit, and for open routes the per-address rate and
/// their share of the slots, all before the handler runs.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &state.limits;
    let Ok(_slot) = limits.all.clone().try_acquire_owned() else {
        return busy().into_response();
    };
    let open = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| OPEN_ROUTES.contains(&p.as_str()));
    let _open_slot = if open {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        if let Some(address) = limits.address(peer, req.headers()) {
            if let Err(wait) = limits.spend(address) {
                let seconds = wait.as_secs() + 1;
                return Error::limited(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    format!(
                        "too many requests from your address to an endpoint that checks a one-time secret; try again in {seconds} s"
                    ),
                    Some(Duration::from_secs(seconds)),
                )
                .into_response();
            }
        }
        match limits.open.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => return busy().into_response(),
        }
    } else {
        None
    };
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?limits.timeout, "request dropped: it ran past the time limit");
            Error::limited(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::RequestTimeout,
                format!(
                    "the request took longer than {} s and was stopped; nothing of it was kept",
                    limits.timeout.as_secs_f32()
                ),
                None,
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(behind_proxy: bool) -> Limits {
        let mut s = Settings::new(
            "example.com",
            url::Url::parse("https://example.com").expect("url"),
        );
        s.behind_proxy = behind_proxy;
        s.open_per_minute = 2;
        s.open_burst = 2;
        Limits::new(&s)
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().expect("header"));
        h
    }

    #[test]
    fn the_address_is_the_peer_unless_a_proxy_was_named() {
        let peer: SocketAddr = "192.0.2.7:5000".parse().expect("addr");
        let spoof = forwarded("198.51.100.1");
        assert_eq!(
            limits(false).address(Some(peer), &spoof),
            Some("192.0.2.7".parse().expect("ip")),
            "without a proxy, a client's own X-Forwarded-For is ignored"
        );
        assert_eq!(
            limits(true).address(Some(peer), &forwarded("198.51.100.1, 203.0.113.9")),
            Some("203.0.113.9".parse().expect("ip")),
            "behind a proxy, the address it appended last counts, not one the client wrote"
        );
        assert_eq!(limits(false).address(None, &HeaderMap::new()), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = limits(false);
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:1".parse().expect("addr");
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:1".parse().expect("addr");
        assert_eq!(
            l.address(Some(a), &HeaderMap::new()),
            l.address(Some(b), &HeaderMap::new())
        );
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:1".parse().expect("addr");
        assert_eq!(
            l.address(Some(mapped), &HeaderMap::new()),
            Some("192.0.2.1".parse().expect("ip"))
        );
    }

    #[test]
    fn an_address_that_spent_its_allowance_waits_and_others_do_not() {
        let l = limits(false);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(l.spend(a).is_ok());
        assert!(l.spend(a).is_ok());
        let wait = l.spend(a).expect_err("third within the minute is refused");
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(30));
        assert!(l.spend(b).is_ok(), "another address is not held back");
    }
}
