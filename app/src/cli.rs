//! The `dashboard` command line: the server, migrations, the demo, and the platform
//! operator's commands (merchants cannot create companies, projects or first users).

use std::io::Read;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use dashboard_core::crypto::SecretBox;
use dashboard_core::db::DbPool;
use dashboard_core::directory::{self, NewUser};
use dashboard_core::hooks;
use dashboard_core::{AppError, BuiltinRole};
use serde::Serialize;

use crate::config::{Config, DatabaseArgs, ServeArgs};
use crate::server::Application;
use crate::{config, demo, telemetry};

#[derive(Debug, Parser)]
#[command(name = "dashboard", version, about = "Merchant dashboard of a payment platform")]
pub struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the web server (migrations run first).
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
        /// Create the demo company first, and print how to sign in.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create the demo company (idempotent) and print how to sign in.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Payments in the generated history (written once, in bulk); use millions for
        /// benchmarks.
        #[arg(long, default_value_t = demo::DEFAULT_PAYMENTS)]
        payments: usize,
    },
    /// Manage companies (merchants).
    Company {
        #[command(subcommand)]
        command: CompanyCommand,
    },
    /// Manage projects of a company.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Manage users of a company.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check that no sealed event of the audit log was changed or deleted; exits 1 on
    /// any break. Needs the installation's secret key file.
    Verify {
        /// The installation's key [default: as `serve` reads it].
        #[arg(long)]
        secret_key_file: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum CompanyCommand {
    /// Create a company with its built-in roles.
    Create {
        #[arg(long)]
        name: String,
        /// Print the created company as one JSON line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Create a project.
    Create {
        /// Id of the company.
        #[arg(long)]
        company: i64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        company: i64,
        #[arg(long)]
        username: String,
        /// support, operations, finance, risks or merchant_admin.
        #[arg(long, value_parser = parse_role)]
        role: BuiltinRole,
        /// Display name [default: the username].
        #[arg(long)]
        name: Option<String>,
        /// Phone in international format, e.g. +447700900123.
        #[arg(long)]
        phone: Option<String>,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(key: &str) -> Result<BuiltinRole, String> {
    BuiltinRole::from_key(key).ok_or_else(|| {
        let keys: Vec<&str> = BuiltinRole::ALL.iter().map(|role| role.key()).collect();
        format!("unknown role {key:?}; use one of {}", keys.join(", "))
    })
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Start(#[from] crate::server::StartError),
    #[error("{0}")]
    App(#[from] AppError),
    #[error("{0}")]
    Other(String),
}

/// The command line: the app's own commands, the commands the crates register, and the
/// crates' settings as flags of `serve` and `demo`.
pub fn command() -> clap::Command {
    let mut command = Cli::command()
        .mut_subcommand("serve", config::with_crate_settings)
        .mut_subcommand("demo", config::with_crate_settings);
    for hook in hooks::Command::all() {
        command = command.subcommand((hook.define)());
    }
    command
}

/// What the command line asks for.
enum Invocation {
    App(Box<Cli>),
    Hook(&'static hooks::Command, DatabaseArgs, clap::ArgMatches),
}

fn parse(args: Vec<std::ffi::OsString>) -> Result<Invocation, clap::Error> {
    let matches = command().try_get_matches_from(args)?;
    if let Some((name, sub)) = matches.subcommand()
        && let Some(hook) = hooks::Command::all().into_iter().find(|hook| hook.name == name)
    {
        let database = DatabaseArgs::from_arg_matches(&matches)?;
        return Ok(Invocation::Hook(hook, database, sub.clone()));
    }
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some((_, sub)) = matches.subcommand() {
        match &mut cli.command {
            Command::Serve { serve, .. } | Command::Demo { serve, .. } => serve.read_crate_settings(sub),
            _ => {}
        }
    }
    Ok(Invocation::App(Box::new(cli)))
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// The threads for blocking work: the default pool's connections and a few more (for
/// password hashing and files).
const BLOCKING_THREADS: usize = crate::config::DEFAULT_POOL_SIZE + 8;

/// Runs the command given by `args` (the first is the program's name), as [`main`] does
/// with the process's own arguments: the benchmark starts the server this way.
pub fn main_from(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let invocation = match parse(args.into_iter().collect()) {
        Ok(invocation) => invocation,
        Err(error) => error.exit(),
    };
    // Few threads for blocking work (SQLite's queries run there, one per pooled
    // connection): the allocator keeps memory per thread, so every extra thread costs
    // resident memory; more threads than connections would only wait for one.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().max_blocking_threads(BLOCKING_THREADS).enable_all().build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match invocation {
        Invocation::App(cli) => runtime.block_on(run(*cli)),
        Invocation::Hook(hook, database, matches) => runtime.block_on(async {
            let db = open_database(&database).await?;
            (hook.run)(db, matches).await.map_err(CliError::from)
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            match error {
                CliError::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { serve, demo } => {
            let config = Config::resolve(&cli.database, &serve)?;
            telemetry::init(config.log_format);
            serve_until_signal(&config, demo).await
        }
        Command::Migrate => {
            let db = open_database(&cli.database).await?;
            let applied = db.migrate().await.map_err(AppError::from)?;
            println!("{applied} migration(s) applied; the database is up to date.");
            Ok(())
        }
        Command::Demo { serve, payments } => {
            let config = Config::resolve(&cli.database, &serve)?;
            let db = open_database(&cli.database).await?;
            db.migrate().await.map_err(AppError::from)?;
            demo::ensure(&db, payments).await?;
            println!("{}", demo::sign_in_instructions(&config.public_url, &config.sms_outbox));
            println!("Start the server with: dashboard serve");
            Ok(())
        }
        Command::Company { command: CompanyCommand::Create { name, json } } => {
            let db = open_database(&cli.database).await?;
            let company = directory::create_company(&db, &name).await?;
            print_created(json, &company, &format!("Created company {} {:?}.", company.id, company.name))
        }
        Command::Project { command: ProjectCommand::Create { company, name, json } } => {
            let db = open_database(&cli.database).await?;
            let project = directory::create_project(&db, company, &name).await?;
            print_created(
                json,
                &project,
                &format!("Created project {} {:?} of company {company}.", project.id, project.name),
            )
        }
        Command::User {
            command: UserCommand::Create { company, username, role, name, phone, password_stdin: _, json },
        } => {
            let password = read_password()?;
            let db = open_database(&cli.database).await?;
            let new = NewUser { company_id: company, username, display_name: name, password, role, phone };
            let user = directory::create_user(&db, new).await?;
            print_created(json, &user, &format!("Created user {} {:?} ({}).", user.id, user.username, role.name()))
        }
        Command::Audit { command: AuditCommand::Verify { secret_key_file } } => {
            let config = Config::resolve(&cli.database, &ServeArgs::default())?;
            let key_file = secret_key_file.unwrap_or(config.secret_key_file);
            if !key_file.exists() {
                return Err(CliError::Other(format!(
                    "the secret key file {} does not exist: the audit log's seals are checked with the installation's key",
                    key_file.display()
                )));
            }
            let secrets = SecretBox::from_key_file(&key_file).map_err(|e| CliError::Other(e.to_string()))?;
            let db = open_database(&cli.database).await?;
            let problems = dashboard_core::audit::chain::verify_chain(&db, &secrets).await?;
            if problems.is_empty() {
                println!("The audit log is intact: no sealed event was changed or deleted.");
                return Ok(());
            }
            for problem in &problems {
                println!("{problem}");
            }
            Err(CliError::Other(format!("{} break(s) in the audit log", problems.len())))
        }
    }
}

/// Opens and migrates the database for an operator command.
async fn open_database(args: &DatabaseArgs) -> Result<DbPool, CliError> {
    let config = Config::resolve(args, &ServeArgs::default())?;
    let db = DbPool::connect(&config.database_url, 2).await.map_err(AppError::from)?;
    db.migrate().await.map_err(AppError::from)?;
    Ok(db)
}

fn read_password() -> Result<String, CliError> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| CliError::Other(format!("cannot read the password from standard input: {e}")))?;
    // One trailing newline (from `echo` or a terminal) is not part of the password.
    let password = input.strip_suffix('\n').map(|p| p.strip_suffix('\r').unwrap_or(p)).unwrap_or(&input);
    Ok(password.to_owned())
}

fn print_created<T: Serialize>(json: bool, value: &T, text: &str) -> Result<(), CliError> {
    if json {
        let line = serde_json::to_string(value).map_err(|e| CliError::Other(e.to_string()))?;
        println!("{line}");
    } else {
        println!("{text}");
    }
    Ok(())
}

async fn serve_until_signal(config: &Config, with_demo: bool) -> Result<(), CliError> {
    let app = Application::build(config).await?;
    if with_demo {
        demo::ensure(&app.state().db, demo::DEFAULT_PAYMENTS).await?;
        println!("{}", demo::sign_in_instructions(&config.public_url, &config.sms_outbox));
    }
    tracing::info!(address = %config.listen, port = app.port(), "listening; sign in at {}/sign-in", config.public_url);
    println!(
        "The dashboard is running at {}/ (API documentation: {}/api/docs). Stop it with Ctrl+C.",
        config.public_url, config.public_url
    );
    app.run_until(shutdown_signal()).await.map_err(|e| CliError::Other(format!("the server stopped: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT (Ctrl+C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
