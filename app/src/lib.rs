//! The dashboard binary's library: configuration, the command line and the poem
//! application. Integration tests start it through [`server::Application`].
#![deny(unused_crate_dependencies)]

// Every section and domain crate, named here so the linker keeps its registrations (a
// crate nothing names is silently dropped). Add a line for each new crate.
use dashboard_chargebacks as _;
#[cfg(feature = "example")]
use dashboard_example as _;
use dashboard_finance as _;
use dashboard_fraud as _;
use dashboard_manual_payments as _;
use dashboard_overview as _;
use dashboard_payment_links as _;
use dashboard_payment_page as _;
use dashboard_payments as _;
use dashboard_payments_domain as _;
use dashboard_profile as _;
use dashboard_projects as _;
use dashboard_reports as _;
use dashboard_sandbox as _;
use dashboard_session as _;
use dashboard_team as _;

/// mimalloc instead of the system allocator, for every program built on this library
/// (the server, the benchmark, the tests): exports and the API allocate many small
/// values on one thread and free them on another, where glibc's allocator took a fifth
/// of the time. It stands in for `malloc` in the C code too (mimalloc's `override`), so
/// that SQLite's page caches and rows come from it as well: glibc kept what a batch
/// file's check had read in arenas of its own per thread, and the server's memory grew.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api_document;
pub mod api_reference;
pub mod cli;
pub mod config;
pub mod demo;
pub mod query_parameters;
pub mod server;
pub mod shell;
pub mod telemetry;
