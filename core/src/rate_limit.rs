//! API rate limits: each credential (an API token, or a dashboard session) and each client
//! address has a budget of requests, refilled continuously. Every API answer says where the
//! caller stands (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, after the
//! IETF draft); a request over budget is answered 429 with `Retry-After`, before anything
//! else reads it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::error::problem_response;
use crate::hooks::{Job, Service, Setting, check_number_up_to};
use crate::state::Settings;
use crate::{AppError, AppState};

const PER_CREDENTIAL: &str = "api_requests_per_second";
const PER_ADDRESS: &str = "api_requests_per_second_per_address";

crate::register!(Setting {
    name: PER_CREDENTIAL,
    help: "API requests one token or session may make per second, with bursts of ten times as many (0: no limit)",
    default: "20",
    check: |value| check_number_up_to(value, 1_000_000),
});

crate::register!(Setting {
    name: PER_ADDRESS,
    help: "API requests one client address may make per second, with bursts of ten times as many (0: no limit). \
           Behind a reverse proxy every client has the proxy's address: raise it there",
    default: "100",
    check: |value| check_number_up_to(value, 1_000_000),
});

/// How many seconds' worth of requests a caller may send at once.
const BURST_SECONDS: u32 = 10;

/// One budget per key, at `per_second` with bursts of [`BURST_SECONDS`] as many.
/// A keyed limiter that tells how much of a budget is left.
type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

struct Budget {
    limiter: Limiter,
    burst: u32,
    interval: Duration,
}

impl Budget {
    fn new(per_second: u32) -> Option<Budget> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(per_second.saturating_mul(BURST_SECONDS))?;
        let quota = Quota::per_second(rate).allow_burst(burst);
        let limiter = RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
        Some(Budget { limiter, burst: burst.get(), interval: quota.replenish_interval() })
    }

    /// `Ok(remaining)` when the request fits, else `Err(wait)`.
    fn take(&self, key: &str) -> Result<Standing, Duration> {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = self.interval * (self.burst - remaining.min(self.burst));
                Ok(Standing { limit: self.burst, remaining, reset })
            }
            Err(not_until) => Err(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }
}

/// Where a caller stands in the tighter of its budgets.
#[derive(Clone, Copy)]
struct Standing {
    limit: u32,
    remaining: u32,
    /// Until the budget is full again.
    reset: Duration,
}

/// The budgets of every caller of the API (one set per server).
pub struct ApiLimits {
    per_credential: Option<Budget>,
    per_address: Option<Budget>,
}

impl ApiLimits {
    fn new(settings: &Settings) -> ApiLimits {
        let rate = |name: &str| settings.setting(name).parse::<u32>().unwrap_or(0);
        ApiLimits { per_credential: Budget::new(rate(PER_CREDENTIAL)), per_address: Budget::new(rate(PER_ADDRESS)) }
    }

    /// Takes one request from each budget of `req`'s keys; the tighter standing, or how long
    /// to wait.
    fn take(&self, req: &Request) -> Result<Option<Standing>, Duration> {
        let mut tightest: Option<Standing> = None;
        let keys = [(&self.per_credential, credential(req)), (&self.per_address, address(req))];
        for (budget, key) in keys {
            let (Some(budget), Some(key)) = (budget, key) else { continue };
            let standing = budget.take(&key)?;
            if tightest.is_none_or(|t| standing.remaining < t.remaining) {
                tightest = Some(standing);
            }
        }
        Ok(tightest)
    }

    /// Drops the keys whose budget is full again, so memory holds only recent callers.
    fn forget_recovered(&self) {
        for budget in [&self.per_credential, &self.per_address].into_iter().flatten() {
            budget.limiter.retain_recent();
            budget.limiter.shrink_to_fit();
        }
    }
}

crate::register!(Service {
    name: "API rate limits",
    start: |settings, extensions| {
        extensions.insert(Arc::new(ApiLimits::new(settings)));
        Ok(())
    },
});

crate::register!(Job {
    name: "API rate limits clean-up",
    every: Duration::from_secs(60),
    run: |state| {
        Box::pin(async move {
            state.extension::<Arc<ApiLimits>>()?.forget_recovered();
            Ok(())
        })
    },
});

/// The API's limits around `inner` (the API under `/api/v1`).
pub struct ApiRateLimit<E> {
    inner: E,
    /// None where no service made them (a binary without this crate's services).
    limits: Option<Arc<ApiLimits>>,
}

impl<E> ApiRateLimit<E> {
    pub fn new(inner: E, state: &AppState) -> ApiRateLimit<E> {
        ApiRateLimit { inner, limits: state.extension::<Arc<ApiLimits>>().ok().cloned() }
    }
}

/// The credential a request carries: its bearer token, or else its session cookie (a hash
/// of it: limiters are kept in memory). A caller who makes up credentials gets 401s, within
/// its address's budget.
fn credential(req: &Request) -> Option<String> {
    let bearer = req.headers().get("authorization").and_then(|value| value.to_str().ok());
    let session = || {
        req.headers()
            .get_all("cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|cookies| cookies.split(';'))
            .filter_map(|cookie| cookie.trim().split_once('='))
            .find(|(name, _)| name.ends_with(crate::session::SESSION_COOKIE))
            .map(|(_, value)| value)
    };
    bearer.or_else(session).map(crate::auth::sha256_hex)
}

fn address(req: &Request) -> Option<String> {
    crate::session::ClientInfo::from_request(req).ip
}

fn seconds(duration: Duration) -> HeaderValue {
    HeaderValue::from(duration.as_secs() + u64::from(duration.subsec_nanos() > 0))
}

impl<E: Endpoint> Endpoint for ApiRateLimit<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let taken = self.limits.as_ref().map_or(Ok(None), |limits| limits.take(&req));
        let standing = match taken {
            Ok(standing) => standing,
            Err(wait) => {
                let error = AppError::TooManyRequests(format!(
                    "Too many requests: wait {} s. Every answer's RateLimit headers say how many are left.",
                    wait.as_secs().max(1)
                ));
                let mut response = problem_response(&error);
                let headers = response.headers_mut();
                headers.insert("retry-after", seconds(wait));
                headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
                headers.insert("ratelimit-reset", seconds(wait));
                return Ok(response);
            }
        };
        let mut response = self.inner.call(req).await.map(IntoResponse::into_response)?;
        if let Some(standing) = standing {
            let headers = response.headers_mut();
            headers.insert("ratelimit-limit", HeaderValue::from(standing.limit));
            headers.insert("ratelimit-remaining", HeaderValue::from(standing.remaining));
            headers.insert("ratelimit-reset", seconds(standing.reset));
        }
        Ok(response)
    }
}
