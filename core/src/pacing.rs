//! People before background work. A long job (a report of millions of rows, a batch file)
//! gives way while requests are being answered: between its rows it asks a [`GiveWay`],
//! which pauses while any request is in flight, so a page asked for meanwhile has the
//! processors to itself. Work run [`GiveWay::around`] gives way before each of its
//! database trips as well, wherever in the code they are. The kernel's priorities alone do not do this: a job thread that
//! is running keeps its core until its slice ends, and a PostgreSQL backend working for a
//! job runs at the requests' priority.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The requests one server is answering right now (their bodies may still be streaming).
#[derive(Default)]
pub struct Requests(AtomicUsize);

impl Requests {
    /// Counts one request until the returned guard is dropped: the request log middleware
    /// holds one around every request.
    pub fn begin(self: &Arc<Self>) -> Answering {
        self.0.fetch_add(1, Ordering::Relaxed);
        Answering(self.clone())
    }

    fn in_flight(&self) -> bool {
        self.in_flight_count() > 0
    }

    /// How many are being answered now.
    pub fn in_flight_count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// A job's courtesy towards these requests.
    pub fn give_way(self: &Arc<Self>) -> GiveWay {
        GiveWay { requests: self.clone(), working_until: Mutex::new(None) }
    }
}

/// One request being answered.
pub struct Answering(Arc<Requests>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a job waits at most for the requests in flight to be answered: a request that
/// takes longer (or a steady stream of them) must not stop the job for good.
const LONGEST_WAIT: Duration = Duration::from_millis(25);

/// After waiting its longest, a job works this long before giving way again, so that
/// under a steady load it still gets about a sixth of a core.
const WORK_AFTER_WAITING: Duration = Duration::from_millis(5);

/// How often a waiting job looks whether the requests are answered.
const NAP: Duration = Duration::from_micros(200);

/// One job's courtesy: call [`GiveWay::blocking`] (on a blocking thread) or
/// [`GiveWay::pause`] (in a task; the job's tasks may share one) between small pieces of
/// work; both return at once when no request is in flight.
pub struct GiveWay {
    requests: Arc<Requests>,
    /// Until when the job works on without looking (after a wait that ran out).
    working_until: Mutex<Option<Instant>>,
}

impl GiveWay {
    /// Whether to wait now: requests are in flight and the job is not in its working time.
    fn should_wait(&self) -> bool {
        if !self.requests.in_flight() {
            return false;
        }
        let mut working_until = self.working_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match *working_until {
            Some(until) if Instant::now() < until => false,
            _ => {
                *working_until = None;
                true
            }
        }
    }

    /// Records how a wait ended: when it ran out, the job works a while before the next.
    fn waited(&self, started: Instant) {
        if started.elapsed() >= LONGEST_WAIT {
            *self.working_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(Instant::now() + WORK_AFTER_WAITING);
        }
    }

    /// For a blocking thread: sleeps while requests are in flight (at most [`LONGEST_WAIT`]).
    pub fn blocking(&self) {
        if !self.should_wait() {
            return;
        }
        let started = Instant::now();
        while self.requests.in_flight() && started.elapsed() < LONGEST_WAIT {
            std::thread::sleep(NAP);
        }
        self.waited(started);
    }

    /// Runs `work` (a job's task) giving way before each database trip it makes: a job
    /// calling a service that takes several trips then leaves the database to a request
    /// that arrives halfway, as it would between rows.
    pub async fn around<F: Future>(self: Arc<Self>, work: F) -> F::Output {
        JOB.scope(self, work).await
    }

    /// For a task: the same as [`GiveWay::blocking`], without holding its thread.
    pub async fn pause(&self) {
        if !self.should_wait() {
            return;
        }
        let started = Instant::now();
        while self.requests.in_flight() && started.elapsed() < LONGEST_WAIT {
            tokio::time::sleep(NAP).await;
        }
        self.waited(started);
    }
}

tokio::task_local! {
    /// The courtesy of the job the running task works for (see [`GiveWay::around`]).
    static JOB: Arc<GiveWay>;
}

/// Called before each database trip: gives way when the running task works for a job.
pub async fn before_database_trip() {
    if let Ok(give_way) = JOB.try_with(Arc::clone) {
        give_way.pause().await;
    }
}
