//! The demo company: "Demo Merchant" with three projects and one user per built-in role.
//! Running it again changes nothing that exists.

use dashboard_core::db::DbPool;
use dashboard_core::directory::{self, NewUser};
use dashboard_core::hooks::{DemoCompany, DemoData};
use dashboard_core::{AppError, BuiltinRole};

pub const COMPANY: &str = "Demo Merchant";
pub const PROJECTS: [&str; 3] = ["Web shop", "Mobile app", "Marketplace"];
/// Every demo user's password (printed, as the demo is for trying the product out).
pub const PASSWORD: &str = "demo-password";

/// (username, display name, role, phone); the phones are in a range reserved for drama.
pub const USERS: [(&str, &str, BuiltinRole, &str); 5] = [
    ("admin", "Alex Morgan", BuiltinRole::MerchantAdmin, "+447700900001"),
    ("support", "Sam Carter", BuiltinRole::Support, "+447700900002"),
    ("operations", "Olivia Reed", BuiltinRole::Operations, "+447700900003"),
    ("finance", "Felix Hart", BuiltinRole::Finance, "+447700900004"),
    ("risks", "Rita Novak", BuiltinRole::Risks, "+447700900005"),
];

/// What the demo created or found.
pub struct Demo {
    pub company_id: i64,
    pub created: usize,
}

/// Payments the demo history has by default, over this many days.
pub const DEFAULT_PAYMENTS: usize = 20_000;
pub const HISTORY_DAYS: i64 = 180;

/// Creates whatever part of the demo company is missing, then lets every registered crate
/// add its demo data (a payment history of `payments` payments when it has none yet, …).
pub async fn ensure(db: &DbPool, payments: usize) -> Result<Demo, AppError> {
    let mut created = 0;
    let company = match directory::find_company_by_name(db, COMPANY).await? {
        Some(company) => company,
        None => {
            created += 1;
            directory::create_company(db, COMPANY).await?
        }
    };
    let existing: Vec<String> =
        directory::company_projects(db, company.id).await?.into_iter().map(|project| project.name).collect();
    for name in PROJECTS {
        if !existing.iter().any(|existing| existing == name) {
            directory::create_project(db, company.id, name).await?;
            created += 1;
        }
    }
    for (username, display_name, role, phone) in USERS {
        if directory::find_user_id(db, username).await?.is_none() {
            directory::create_user(
                db,
                NewUser {
                    company_id: company.id,
                    username: username.to_owned(),
                    display_name: Some(display_name.to_owned()),
                    password: PASSWORD.to_owned(),
                    role,
                    phone: Some(phone.to_owned()),
                },
            )
            .await?;
            created += 1;
        }
    }
    let project_ids = directory::company_projects(db, company.id).await?.into_iter().map(|p| p.id).collect();
    let demo = DemoCompany { company_id: company.id, project_ids, history_size: payments, days: HISTORY_DAYS };
    for data in DemoData::all() {
        created += (data.add)(db.clone(), demo.clone()).await?;
    }
    Ok(Demo { company_id: company.id, created })
}

/// How to sign in, for the terminal.
pub fn sign_in_instructions(public_url: &str, sms_outbox: &std::path::Path) -> String {
    let mut text = format!(
        "\nDemo company \"{COMPANY}\" is ready.\nSign in at {public_url}/sign-in with one of these users, password \"{PASSWORD}\":\n"
    );
    for (username, display_name, role, phone) in USERS {
        text.push_str(&format!("  {username:<12} {display_name:<13} {:<15} {phone}\n", role.name()));
    }
    text.push_str(&format!(
        "Permissions beyond the exempt ones need two-factor authentication: My profile sets it up with a code\n\
         sent by SMS (text messages are written to {}) and an authenticator app.\n",
        sms_outbox.display()
    ));
    text
}
