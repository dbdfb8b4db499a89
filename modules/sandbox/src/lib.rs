//! The sandbox: what stands in for the payment platform's acquirer until a real one is
//! plugged in. It brings the sandbox acquirer (the application's connector, with the
//! `sandbox_latency_ms` setting), the demo company's payment history, and the
//! `dashboard sandbox chargeback` command that reports what a real acquirer would; it
//! decides disputed chargebacks (won with evidence files, lost without) after
//! `sandbox_dispute_decision_seconds`, or at once with `dashboard sandbox decide`.

pub mod acquirer;
pub mod history;

use std::sync::Arc;
use std::time::Duration;

use dashboard_core::hooks::{Command, DemoData, Job, Service, Setting, check_number_up_to};
use dashboard_core::{AppError, register};
use dashboard_payments_domain::connector::Acquirer;
use dashboard_payments_domain::{chargebacks, service};

use crate::acquirer::SandboxAcquirer;

register!(Setting {
    name: "sandbox_latency_ms",
    help: "Milliseconds the sandbox acquirer takes to answer",
    default: "0",
    check: |value| check_number_up_to(value, 60_000),
});

register!(Setting {
    name: "sandbox_dispute_decision_seconds",
    help: "Seconds after which the sandbox acquirer decides a disputed chargeback (won when files were given)",
    default: "60",
    check: |value| check_number_up_to(value, 30 * 24 * 3600),
});

/// The sandbox acquirer decides disputes as a real one would, later: won when the
/// merchant gave evidence files, lost on words alone.
async fn decide_disputes(state: &dashboard_core::AppState) -> Result<(), AppError> {
    let seconds = state.settings.setting("sandbox_dispute_decision_seconds").parse::<i64>().unwrap_or(60);
    for (case, files) in chargebacks::disputed_since(&state.db, chrono::TimeDelta::seconds(seconds)).await? {
        match chargebacks::decide(&state.db, &case, files > 0).await {
            Ok(_) | Err(AppError::Conflict(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

register!(Job {
    name: "sandbox dispute decisions",
    every: Duration::from_secs(5),
    run: |state| Box::pin(async move { decide_disputes(&state).await }),
});

register!(Service {
    name: "sandbox acquirer",
    start: |settings, extensions| {
        let latency = settings.setting("sandbox_latency_ms").parse::<u64>().map_err(|e| e.to_string())?;
        let acquirer = SandboxAcquirer { latency: Duration::from_millis(latency) };
        extensions.insert(Acquirer(Arc::new(acquirer)));
        Ok(())
    },
});

register!(DemoData {
    name: "payment history",
    order: 10,
    add: |db, demo| {
        Box::pin(async move {
            if history::payment_count(&db, demo.company_id).await? > 0 {
                return Ok(0);
            }
            let written =
                history::generate_history(&db, demo.company_id, &demo.project_ids, demo.history_size, demo.days, 2026)
                    .await?;
            chargebacks::open_missing_cases(&db, demo.company_id).await?;
            Ok(written)
        })
    },
});

register!(Command {
    name: "sandbox",
    define: || {
        clap::Command::new("sandbox")
            .about("What the sandbox acquirer reports on its own (a real acquirer sends these)")
            .subcommand_required(true)
            .subcommand(
                clap::Command::new("chargeback")
                    .about("Report a chargeback: the customer's bank takes money of a captured payment back.")
                    .arg(clap::Arg::new("payment").required(true).help("The payment's id (`pay_…`)."))
                    .arg(
                        clap::Arg::new("amount")
                            .long("amount")
                            .help("How much, e.g. `12.50` (default: all that is neither refunded nor charged back)."),
                    )
                    .arg(
                        clap::Arg::new("reason_code")
                            .long("reason-code")
                            .required(true)
                            .help("The card scheme's reason code, e.g. `10.4`."),
                    )
                    .arg(
                        clap::Arg::new("reason")
                            .long("reason")
                            .required(true)
                            .help("The reason in words, e.g. `Fraud, card absent`."),
                    ),
            )
            .subcommand(
                clap::Command::new("decide")
                    .about("Decide a disputed chargeback now, as the acquirer would.")
                    .arg(clap::Arg::new("chargeback").required(true).help("The chargeback's id (`cb_…`)."))
                    .arg(
                        clap::Arg::new("outcome")
                            .required(true)
                            .value_parser(["won", "lost"])
                            .help("`won` gives the money back to the merchant; `lost` leaves it with the customer."),
                    ),
            )
    },
    run: |db, matches| {
        Box::pin(async move {
            let text = |args: &clap::ArgMatches, name: &str| args.get_one::<String>(name).cloned().unwrap_or_default();
            let args = match matches.subcommand() {
                Some(("chargeback", args)) => args,
                Some(("decide", args)) => {
                    let case = text(args, "chargeback");
                    let outcome = chargebacks::decide(&db, &case, text(args, "outcome") == "won").await?;
                    println!("Chargeback {case}: {}.", outcome.label().to_lowercase());
                    return Ok(());
                }
                _ => return Err(AppError::BadRequest("unknown sandbox command".to_owned())),
            };
            let text = |name: &str| text(args, name);
            let payment = text("payment");
            let amount = match args.get_one::<String>("amount") {
                None => None,
                Some(amount) => {
                    let currency = service::currency_of(&db, &payment).await?;
                    let minor = dashboard_core::money::parse_amount(amount, &currency)
                        .ok_or_else(|| AppError::BadRequest(format!("{amount:?} is not an amount in {currency}.")))?;
                    Some(minor)
                }
            };
            service::record_chargeback(&db, &payment, amount, &text("reason_code"), &text("reason")).await?;
            println!("Chargeback recorded on {payment}.");
            Ok(())
        })
    },
});
