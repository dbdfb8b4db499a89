//! Sign-in throttling: attempts per client address and per username are limited before
//! anything is read, counted or hashed. A storm of sign-ins (each an argon2 verification)
//! then neither starves the dashboard nor, from one address, locks its users out: the
//! lockout counts only the attempts that got through.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::hooks::{Job, Service, Setting, check_number_up_to};
use crate::{AppError, AppState};

const PER_ADDRESS: &str = "sign_in_attempts_per_address";
const PER_USERNAME: &str = "sign_in_attempts_per_username";

crate::register!(Setting {
    name: PER_ADDRESS,
    help: "Sign-in attempts one client address may make per minute (0: no limit). Behind a reverse proxy every \
           client has the proxy's address: raise it there",
    default: "30",
    check: |value| check_number_up_to(value, 1_000_000),
});

crate::register!(Setting {
    name: PER_USERNAME,
    help: "Sign-in attempts for one username per minute, from anywhere (0: no limit)",
    default: "10",
    check: |value| check_number_up_to(value, 1_000_000),
});

/// A budget of attempts per minute for each key (an address, a username, a payment
/// link); 0 attempts: no limit.
pub struct PerMinute(Option<DefaultKeyedRateLimiter<String>>);

impl PerMinute {
    pub fn new(attempts: u32) -> PerMinute {
        PerMinute(NonZeroU32::new(attempts).map(|n| RateLimiter::keyed(Quota::per_minute(n))))
    }

    /// Counts an attempt for `key`; false when its budget is spent.
    pub fn allows(&self, key: &str) -> bool {
        self.0.as_ref().is_none_or(|limiter| limiter.check_key(&key.to_owned()).is_ok())
    }

    /// Drops the keys whose budget is full again (memory stays bounded by a minute's
    /// worth of keys).
    pub fn forget_recovered(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The two limits, each with its own budget per key.
pub struct SignInThrottle {
    by_address: PerMinute,
    by_username: PerMinute,
}

impl SignInThrottle {
    /// Limits per minute; 0 turns one off.
    pub fn new(per_address: u32, per_username: u32) -> SignInThrottle {
        SignInThrottle { by_address: PerMinute::new(per_address), by_username: PerMinute::new(per_username) }
    }

    /// The application's throttle.
    pub fn of(state: &AppState) -> Result<&SignInThrottle, AppError> {
        Ok(state.extension::<Arc<SignInThrottle>>()?.as_ref())
    }

    /// Counts an attempt from `address` for `username` (as typed, any case), or refuses it
    /// (429) when either is over its limit. Unknown usernames count alike, so the answer
    /// says nothing about who has an account.
    pub fn check(&self, address: Option<&str>, username: &str) -> Result<(), AppError> {
        let refused =
            || AppError::TooManyRequests("Too many sign-in attempts. Wait a minute, then try again.".to_owned());
        if address.is_some_and(|address| !self.by_address.allows(address)) {
            return Err(refused());
        }
        if !self.by_username.allows(&username.trim().to_lowercase()) {
            return Err(refused());
        }
        Ok(())
    }

    fn forget_recovered(&self) {
        self.by_address.forget_recovered();
        self.by_username.forget_recovered();
    }
}

crate::register!(Service {
    name: "sign-in throttle",
    start: |settings, extensions| {
        let limit = |name: &str| settings.setting(name).parse::<u32>().map_err(|e| format!("{name}: {e}"));
        extensions.insert(Arc::new(SignInThrottle::new(limit(PER_ADDRESS)?, limit(PER_USERNAME)?)));
        Ok(())
    },
});

const SIGN_INS_AT_ONCE: &str = "sign_in_requests_at_once";

crate::register!(Setting {
    name: SIGN_INS_AT_ONCE,
    help: "Anonymous credential requests (sign-in, its code, set-password and forgot-password) handled at once; \
           the others wait their turn, so that a storm of them leaves the rest of the dashboard its share",
    default: "2",
    check: |value| match value.parse::<u32>() {
        Ok(1..=1024) => Ok(()),
        _ => Err(format!("{value:?} is not a whole number from 1 to 1024")),
    },
});

/// The requests anyone can send without a session that check a credential: sign-in with
/// a password or a code, and asking for and redeeming a set-password link (pages and API).
const CREDENTIAL_CHECKS: [&str; 8] = [
    "/sign-in",
    "/sign-in/second-factor",
    "/set-password",
    "/forgot-password",
    "/api/v1/session",
    "/api/v1/session/second-factor",
    "/api/v1/password-links",
    "/api/v1/password-links/redemption",
];

/// At most this many wait for their turn; more are refused at once (503, Retry-After).
const LANE_QUEUE: usize = 512;

/// A lane for anonymous credential requests, outside everything else: however many
/// clients storm sign-in, at most `sign_in_requests_at_once` of their requests are read,
/// logged, throttled or hashed at a time; the others wait (costing nothing) or, beyond
/// [`LANE_QUEUE`], are refused. The rest of the dashboard keeps its share of the
/// cores: a storm's requests are few among the runnable ones.
pub struct SignInLane<E> {
    inner: E,
    turns: Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
}

impl<E> SignInLane<E> {
    /// The lane of the settings (checked at start: a number from 1).
    pub fn new(inner: E, settings: &crate::state::Settings) -> SignInLane<E> {
        let at_once = settings.setting(SIGN_INS_AT_ONCE).parse::<usize>().unwrap_or(2).max(1);
        SignInLane { inner, turns: Arc::new(tokio::sync::Semaphore::new(at_once)), waiting: Default::default() }
    }
}

impl<E: poem::Endpoint> poem::Endpoint for SignInLane<E> {
    type Output = E::Output;

    async fn call(&self, req: poem::Request) -> poem::Result<Self::Output> {
        use std::sync::atomic::Ordering;
        let checks_credential =
            req.method() == poem::http::Method::POST && CREDENTIAL_CHECKS.contains(&req.uri().path());
        if !checks_credential {
            return self.inner.call(req).await;
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= LANE_QUEUE {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(AppError::Unavailable("too many sign-ins at once; try again in a moment".to_owned()).into());
        }
        let turn = self.turns.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _turn = turn.map_err(|e| AppError::Internal(e.to_string()))?;
        self.inner.call(req).await
    }
}

crate::register!(Job {
    name: "sign-in throttle clean-up",
    every: std::time::Duration::from_secs(60),
    run: |state| {
        Box::pin(async move {
            SignInThrottle::of(&state)?.forget_recovered();
            Ok(())
        })
    },
});

#[cfg(test)]
mod tests {
    use super::SignInThrottle;

    #[test]
    fn each_address_and_each_username_has_its_own_budget() {
        let throttle = SignInThrottle::new(3, 2);
        assert!(throttle.check(Some("192.0.2.1"), "ann").is_ok());
        assert!(throttle.check(Some("192.0.2.1"), "ANN ").is_ok(), "the same name, as typed");
        assert!(throttle.check(Some("192.0.2.2"), "ann").is_err(), "ann's budget is spent, from anywhere");
        assert!(throttle.check(Some("192.0.2.1"), "bob").is_ok(), "the first address's third attempt");
        assert!(throttle.check(Some("192.0.2.1"), "carol").is_err(), "its budget is spent");
        assert!(throttle.check(Some("192.0.2.3"), "carol").is_ok());
        let unlimited = SignInThrottle::new(0, 0);
        assert!((0..100).all(|_| unlimited.check(Some("192.0.2.1"), "ann").is_ok()));
    }
}
