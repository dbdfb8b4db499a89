//! What a crate brings besides pages and API, declared like its section and collected
//! at start-up: background jobs, start-up services, settings, command-line commands and
//! demo data. The application only composes them; it names no section's code.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use poem::http::Extensions;

use crate::db::DbPool;
use crate::error::AppError;
use crate::state::{AppState, Settings};

/// Declares one of this module's hooks ([`Job`], [`Service`], [`Setting`], [`Command`],
/// [`DemoData`]): `register!(Job { … })`.
#[macro_export]
macro_rules! register {
    ($hook:expr) => {
        $crate::__private::inventory::submit! { $hook }
    };
}

/// A background job: `run` is called every `every` while the server runs (the next round
/// starts `every` after the previous one ended, or later: see [`JOB_PARTS`]), never twice
/// at once in one process. A failed round is logged and tried again in the next.
pub struct Job {
    pub name: &'static str,
    pub every: Duration,
    pub run: fn(AppState) -> BoxFuture<'static, Result<(), AppError>>,
}

inventory::collect!(Job);

/// A route that takes a file upload (a `POST` to `path`, where `{name}` stands for any one
/// segment), and the largest body it takes instead of the usual limits of [`crate::limits`].
pub struct Upload {
    pub path: &'static str,
    pub limit: usize,
}

inventory::collect!(Upload);

/// A job takes about one part in `JOB_PARTS` of the time at most: after a round that took
/// `d`, the next one waits `(JOB_PARTS - 1) × d` (but no longer than ten of its periods),
/// so that under load, when rounds grow long, a job leaves the machine to the requests
/// instead of running back to back.
const JOB_PARTS: u32 = 10;

/// How much less the kernel favours the jobs' threads than the requests' (a nice value:
/// at 10 a busy job thread gets about a tenth of a core a request thread wants).
const JOBS_NICENESS: i32 = 10;

/// Threads for the jobs' blocking work (their SQLite reads).
const JOBS_BLOCKING_THREADS: usize = 4;

/// The runtime the jobs run on: threads of their own, which the kernel schedules after
/// the threads that answer requests, so that a long job (a batch file of 100,000 rows)
/// takes the machine only when people leave it idle. What a job spawns runs there too,
/// and so do the database reads it hands to blocking threads.
fn jobs_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("dashboard-jobs")
            // Few threads for the jobs' database reads: each thread costs memory.
            .max_blocking_threads(JOBS_BLOCKING_THREADS)
            .on_thread_start(|| {
                let this_thread = Some(rustix::thread::gettid());
                if let Err(error) = rustix::process::setpriority_process(this_thread, JOBS_NICENESS) {
                    tracing::warn!(%error, "a job thread keeps the requests' priority");
                }
            })
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("the jobs' runtime cannot start: {error}"))
    })
}

/// The running jobs: they stop when this is dropped (the jobs' runtime outlives any one
/// server, e.g. the tests').
pub struct Jobs(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Jobs {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// Starts every registered job on the jobs' runtime.
pub fn spawn_jobs(state: &AppState) -> Jobs {
    let jobs = inventory::iter::<Job>
        .into_iter()
        .map(|job| {
            let state = state.clone();
            jobs_runtime().spawn(async move {
                let mut pause = job.every;
                loop {
                    tokio::time::sleep(pause).await;
                    let started = std::time::Instant::now();
                    let round = (job.run)(state.clone()).await;
                    if let Err(error) = &round {
                        tracing::warn!(job = job.name, %error, "background job round failed");
                    }
                    crate::metrics::metrics().job_round(job.name, round.is_ok(), started.elapsed().as_secs_f64());
                    pause = (started.elapsed() * (JOB_PARTS - 1)).clamp(job.every, job.every * 10);
                }
            })
        })
        .collect();
    Jobs(jobs)
}

/// Something a crate builds once at start-up from the settings and keeps in the
/// application state for its handlers, e.g. the acquirer of a domain crate. `start`
/// inserts it into the extensions (read back with [`AppState::extension`]).
pub struct Service {
    pub name: &'static str,
    pub start: fn(&Settings, &mut Extensions) -> Result<(), String>,
}

inventory::collect!(Service);

/// Builds every registered service; the first failure stops the start, naming the service.
pub fn start_services(settings: &Settings) -> Result<Extensions, String> {
    let mut extensions = Extensions::new();
    for service in inventory::iter::<Service> {
        (service.start)(settings, &mut extensions).map_err(|reason| format!("{}: {reason}", service.name))?;
    }
    Ok(extensions)
}

/// A setting of a crate: the flag `--<name with dashes>` of `dashboard serve`, the
/// environment variable `DASHBOARD_<NAME>` and the key `<name>` of the configuration file.
/// Read it with [`Settings::setting`].
pub struct Setting {
    /// Lower case with underscores: `sandbox_latency_ms`.
    pub name: &'static str,
    /// For `--help`, without a final stop (the default is added to it).
    pub help: &'static str,
    pub default: &'static str,
    /// Checks a value; the message names what is wrong (the setting is named for it).
    pub check: fn(&str) -> Result<(), String>,
}

inventory::collect!(Setting);

impl Setting {
    /// Every registered setting, by name.
    pub fn all() -> BTreeMap<&'static str, &'static Setting> {
        inventory::iter::<Setting>.into_iter().map(|setting| (setting.name, setting)).collect()
    }

    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    pub fn env(&self) -> String {
        format!("DASHBOARD_{}", self.name.to_ascii_uppercase())
    }

    /// Checks `value`, with the setting's flag and variable in the message.
    pub fn checked(&self, value: &str) -> Result<String, String> {
        (self.check)(value)
            .map(|()| value.to_owned())
            .map_err(|reason| format!("{} (--{}, {}): {reason}", self.name, self.flag(), self.env()))
    }
}

/// Checks an unsigned whole number up to `max`, for [`Setting::check`].
pub fn check_number_up_to(value: &str, max: u64) -> Result<(), String> {
    match value.parse::<u64>() {
        Ok(number) if number <= max => Ok(()),
        _ => Err(format!("{value:?} is not a whole number from 0 to {max}")),
    }
}

/// A command-line command: `dashboard <name> …`, for the platform operator.
pub struct Command {
    pub name: &'static str,
    /// Describes the command's arguments and sub-commands (`about` is set from `name`'s
    /// declaration by the crate).
    pub define: fn() -> clap::Command,
    /// Runs it on the migrated database; an error is printed and exits with status 1.
    pub run: fn(DbPool, clap::ArgMatches) -> BoxFuture<'static, Result<(), AppError>>,
}

inventory::collect!(Command);

impl Command {
    /// Every registered command, by name.
    pub fn all() -> Vec<&'static Command> {
        let mut all: Vec<&'static Command> = inventory::iter::<Command>.into_iter().collect();
        all.sort_by_key(|command| command.name);
        all
    }
}

/// The demo company, for the crates that add demo data to it.
#[derive(Debug, Clone)]
pub struct DemoCompany {
    pub company_id: i64,
    pub project_ids: Vec<i64>,
    /// How many records the demo's history should hold (`dashboard demo`'s size).
    pub history_size: usize,
    /// Over how many days up to today.
    pub days: i64,
}

/// Demo data a crate adds to the demo company, in `order` (lower first). `add` must be
/// idempotent: it runs on every `dashboard demo` and `serve --demo`, and adds nothing
/// that exists. It answers how many records it created.
pub struct DemoData {
    pub name: &'static str,
    pub order: i32,
    pub add: fn(DbPool, DemoCompany) -> BoxFuture<'static, Result<usize, AppError>>,
}

inventory::collect!(DemoData);

impl DemoData {
    /// Every registered contributor, in order.
    pub fn all() -> Vec<&'static DemoData> {
        let mut all: Vec<&'static DemoData> = inventory::iter::<DemoData>.into_iter().collect();
        all.sort_by_key(|data| (data.order, data.name));
        all
    }
}
