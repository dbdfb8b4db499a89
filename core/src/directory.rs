//! Companies, projects and users: the operator's commands and what sections read.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

use crate::audit::{self, AuditEvent};
use crate::auth::{Principal, hash_password_blocking, password_problem};
use crate::db::DbPool;
use crate::error::AppError;
use crate::registry::BuiltinRole;
use crate::schema::{companies, projects, roles, user_roles, users};
use crate::time::now;

#[derive(Debug, Clone, Serialize, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = companies)]
pub struct Company {
    pub id: i64,
    pub name: String,
    #[serde(with = "crate::time::serde_rfc3339")]
    pub created_at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, Serialize, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = projects)]
pub struct Project {
    pub id: i64,
    pub company_id: i64,
    pub name: String,
    #[serde(with = "crate::time::serde_rfc3339")]
    pub created_at: chrono::NaiveDateTime,
}

/// A user as others may see it (never the password hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub id: i64,
    pub company_id: i64,
    pub username: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub roles: Vec<String>,
}

/// What the operator gives to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub company_id: i64,
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
    pub role: BuiltinRole,
    pub phone: Option<String>,
}

fn conflict_on_unique(what: String) -> impl FnOnce(DieselError) -> AppError {
    move |error| match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => AppError::Conflict(what),
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            AppError::BadRequest("a referenced company or project does not exist".to_owned())
        }
        other => other.into(),
    }
}

/// A trimmed, non-empty name of at most 100 characters.
fn valid_name(what: &str, name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::BadRequest(format!("The {what} name must have 1 to 100 characters.")));
    }
    Ok(name.to_owned())
}

/// Usernames: 3–64 of `a-z 0-9 . _ - @`.
pub fn valid_username(username: &str) -> Result<String, AppError> {
    let username = username.trim().to_lowercase();
    let ok = (3..=64).contains(&username.len())
        && username.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c));
    if !ok {
        return Err(AppError::BadRequest(
            "The username must have 3 to 64 characters: letters, digits, '.', '_', '-' or '@'.".to_owned(),
        ));
    }
    Ok(username)
}

/// Phone numbers in international format: `+`, country code and number, 8 to 15 digits.
pub fn valid_phone(phone: &str) -> Result<String, AppError> {
    let compact: String = phone.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let digits = compact.strip_prefix('+').unwrap_or_default();
    if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) || digits.starts_with('0') {
        return Err(AppError::BadRequest(
            "The phone number must be in international format: + country code and number, e.g. +447700900123."
                .to_owned(),
        ));
    }
    Ok(compact)
}

/// Creates a company with its built-in roles.
pub async fn create_company(db: &DbPool, name: &str) -> Result<Company, AppError> {
    let name = valid_name("company", name)?;
    let created_at = now();
    let company: Company = crate::db_transaction!(db, conn => {
        let company: Company = diesel::insert_into(companies::table)
            .values((companies::name.eq(&name), companies::created_at.eq(created_at)))
            .returning(Company::as_returning())
            .get_result(conn)
            .await?;
        for role in BuiltinRole::ALL {
            diesel::insert_into(roles::table)
                .values((
                    roles::company_id.eq(company.id),
                    roles::name.eq(role.name()),
                    roles::builtin.eq(Some(role.key())),
                    roles::created_at.eq(created_at),
                ))
                .execute(conn)
                .await?;
        }
        Ok::<_, DieselError>(company)
    })
    .map_err(conflict_on_unique(format!("A company named {name:?} already exists.")))?;
    audit::record(db, AuditEvent::operator("company.created", format!("company {}", company.id)).company(company.id))
        .await?;
    Ok(company)
}

pub async fn find_company_by_name(db: &DbPool, name: &str) -> Result<Option<Company>, AppError> {
    let name = name.trim().to_owned();
    Ok(crate::db_run!(db, conn => {
        companies::table.filter(companies::name.eq(&name)).select(Company::as_select()).first(conn).await.optional()
    })?)
}

pub async fn find_company(db: &DbPool, id: i64) -> Result<Option<Company>, AppError> {
    Ok(crate::db_run!(db, conn => {
        companies::table.find(id).select(Company::as_select()).first(conn).await.optional()
    })?)
}

async fn require_company(db: &DbPool, company_id: i64) -> Result<Company, AppError> {
    find_company(db, company_id)
        .await?
        .ok_or_else(|| AppError::BadRequest(format!("There is no company with id {company_id}.")))
}

/// Creates a project of a company.
pub async fn create_project(db: &DbPool, company_id: i64, name: &str) -> Result<Project, AppError> {
    let name = valid_name("project", name)?;
    require_company(db, company_id).await?;
    let project: Project = crate::db_write!(db, conn => {
        diesel::insert_into(projects::table)
            .values((projects::company_id.eq(company_id), projects::name.eq(&name), projects::created_at.eq(now())))
            .returning(Project::as_returning())
            .get_result(conn)
            .await
    })
    .map_err(conflict_on_unique(format!("The company already has a project named {name:?}.")))?;
    audit::record(db, AuditEvent::operator("project.created", format!("project {}", project.id)).company(company_id))
        .await?;
    Ok(project)
}

/// The projects of the principal's company that the principal may see, by name.
pub async fn visible_projects(db: &DbPool, principal: &Principal) -> Result<Vec<Project>, AppError> {
    let all = company_projects(db, principal.company_id).await?;
    Ok(all.into_iter().filter(|project| principal.projects.allows(project.id)).collect())
}

/// Project `project_id`, if the principal may see it; else 404 (whether it exists in
/// another company is not said).
pub async fn visible_project(db: &DbPool, principal: &Principal, project_id: i64) -> Result<Project, AppError> {
    visible_projects(db, principal)
        .await?
        .into_iter()
        .find(|project| project.id == project_id)
        .ok_or(AppError::NotFound)
}

/// The names of the projects the principal may see, by id.
pub async fn visible_project_names(
    db: &DbPool,
    principal: &Principal,
) -> Result<std::collections::HashMap<i64, String>, AppError> {
    Ok(visible_projects(db, principal).await?.into_iter().map(|project| (project.id, project.name)).collect())
}

pub async fn company_projects(db: &DbPool, company_id: i64) -> Result<Vec<Project>, AppError> {
    Ok(crate::db_run!(db, conn => {
        projects::table
            .filter(projects::company_id.eq(company_id))
            .order(projects::name.asc())
            .select(Project::as_select())
            .load(conn)
            .await
    })?)
}

/// The people of a company (deactivated ones too: they may have acted before), by id,
/// with the name people read (their display name, else their username), by name.
pub async fn company_people(db: &DbPool, company_id: i64) -> Result<Vec<(i64, String)>, AppError> {
    let rows: Vec<(i64, String, String)> = crate::db_run!(db, conn => {
        users::table
            .filter(users::company_id.eq(company_id))
            .select((users::id, users::username, users::display_name))
            .load(conn)
            .await
    })?;
    let mut people: Vec<(i64, String)> = rows
        .into_iter()
        .map(|(id, username, display_name)| (id, if display_name.trim().is_empty() { username } else { display_name }))
        .collect();
    people.sort_by_key(|(_, name)| name.to_lowercase());
    Ok(people)
}

/// Creates a user with one built-in role and access to all projects.
pub async fn create_user(db: &DbPool, new: NewUser) -> Result<UserSummary, AppError> {
    let username = valid_username(&new.username)?;
    if let Some(problem) = password_problem(&new.password) {
        return Err(AppError::BadRequest(problem.to_owned()));
    }
    let phone = new.phone.as_deref().map(valid_phone).transpose()?;
    let display_name = match &new.display_name {
        Some(name) => valid_name("display", name)?,
        None => username.clone(),
    };
    require_company(db, new.company_id).await?;
    let password_hash = hash_password_blocking(new.password.clone()).await?;
    let company_id = new.company_id;
    let role_key = new.role.key();
    let created = now();
    let user_id: i64 = crate::db_transaction!(db, conn => {
        let role_id: i64 = roles::table
            .filter(roles::company_id.eq(company_id))
            .filter(roles::builtin.eq(role_key))
            .select(roles::id)
            .first(conn)
            .await?;
        let user_id: i64 = diesel::insert_into(users::table)
            .values((
                users::company_id.eq(company_id),
                users::username.eq(&username),
                users::display_name.eq(&display_name),
                users::phone.eq(&phone),
                users::password_hash.eq(&password_hash),
                users::created_at.eq(created),
                users::updated_at.eq(created),
            ))
            .returning(users::id)
            .get_result(conn)
            .await?;
        diesel::insert_into(user_roles::table)
            .values((user_roles::user_id.eq(user_id), user_roles::role_id.eq(role_id)))
            .execute(conn)
            .await?;
        Ok::<_, DieselError>(user_id)
    })
    .map_err(conflict_on_unique(format!("The username {username:?} is taken.")))?;
    audit::record(db, AuditEvent::operator("user.created", format!("user {user_id}")).company(company_id)).await?;
    Ok(UserSummary { id: user_id, company_id, username, display_name, phone, roles: vec![new.role.name().to_owned()] })
}

pub async fn find_user_id(db: &DbPool, username: &str) -> Result<Option<i64>, AppError> {
    let username = username.trim().to_lowercase();
    Ok(crate::db_run!(db, conn => {
        users::table.filter(users::username.eq(&username)).select(users::id).first(conn).await.optional()
    })?)
}

/// Sets a user's phone (already checked with [`valid_phone`]), or removes it.
pub async fn set_phone(db: &DbPool, user_id: i64, phone: Option<&str>) -> Result<(), AppError> {
    crate::db_write!(db, conn => {
        diesel::update(users::table.find(user_id))
            .set((users::phone.eq(phone), users::updated_at.eq(now())))
            .execute(conn)
            .await
    })?;
    Ok(())
}

/// A user's phone, if any.
pub async fn profile_phone(db: &DbPool, user_id: i64) -> Result<Option<String>, AppError> {
    Ok(crate::db_run!(db, conn => users::table.find(user_id).select(users::phone).first(conn).await)?)
}

/// The company of a user.
pub async fn company_of_user(db: &DbPool, user_id: i64) -> Result<i64, AppError> {
    Ok(crate::db_run!(db, conn => {
        users::table.find(user_id).select(users::company_id).first(conn).await
    })?)
}

/// The company of a project; `None` for an unknown project.
pub async fn company_of_project(db: &DbPool, project_id: i64) -> Result<Option<i64>, AppError> {
    Ok(crate::db_run!(db, conn => {
        projects::table.find(project_id).select(projects::company_id).first(conn).await.optional()
    })?)
}

/// Sets a user's password (the operator's reset, and the demo's idempotent re-run).
pub async fn set_password(db: &DbPool, user_id: i64, password: &str) -> Result<(), AppError> {
    if let Some(problem) = password_problem(password) {
        return Err(AppError::BadRequest(problem.to_owned()));
    }
    let hash = hash_password_blocking(password.to_owned()).await?;
    crate::db_write!(db, conn => {
        diesel::update(users::table.find(user_id))
            .set((users::password_hash.eq(&hash), users::updated_at.eq(now())))
            .execute(conn)
            .await
    })?;
    Ok(())
}

/// What a user may change about themselves.
#[derive(Debug, Clone, Serialize, serde::Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProfileDetails {
    /// 1 to 100 characters, not only spaces.
    #[oai(validator(min_length = 1, max_length = 100, pattern = r"\S"))]
    pub display_name: String,
    /// Optional contact address.
    pub email: Option<String>,
    /// IANA time zone, e.g. `Europe/London`; dates are shown in it.
    pub time_zone: String,
}

pub async fn profile_details(db: &DbPool, user_id: i64) -> Result<ProfileDetails, AppError> {
    let (display_name, email, time_zone) = crate::db_run!(db, conn => {
        users::table.find(user_id).select((users::display_name, users::email, users::time_zone)).first(conn).await
    })?;
    Ok(ProfileDetails { display_name, email, time_zone })
}

/// A plausible e-mail address: one `@`, something on both sides, a dot in the domain.
fn valid_email(email: &str) -> Result<Option<String>, AppError> {
    let email = email.trim();
    if email.is_empty() {
        return Ok(None);
    }
    let ok = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        });
    if ok {
        Ok(Some(email.to_owned()))
    } else {
        Err(AppError::BadRequest("The e-mail address is not valid.".to_owned()))
    }
}

/// `UTC` or a name of the IANA time zone database such as `Europe/London`.
fn valid_time_zone(zone: &str) -> Result<String, AppError> {
    match zone.trim().parse::<chrono_tz::Tz>() {
        Ok(zone) => Ok(zone.name().to_owned()),
        Err(_) => Err(AppError::BadRequest(
            "The time zone must be UTC or a name of the time zone database, like Europe/London.".to_owned(),
        )),
    }
}

/// Checks and normalises profile details (trimmed name, empty e-mail as none).
pub fn check_profile(details: &ProfileDetails) -> Result<ProfileDetails, AppError> {
    Ok(ProfileDetails {
        display_name: valid_name("display", &details.display_name)?,
        email: details.email.as_deref().map(valid_email).transpose()?.flatten(),
        time_zone: valid_time_zone(&details.time_zone)?,
    })
}

/// Changes a user's own details; every field is checked before anything is written.
pub async fn update_profile(db: &DbPool, user_id: i64, details: &ProfileDetails) -> Result<ProfileDetails, AppError> {
    let ProfileDetails { display_name, email, time_zone } = check_profile(details)?;
    crate::db_write!(db, conn => {
        diesel::update(users::table.find(user_id))
            .set((
                users::display_name.eq(&display_name),
                users::email.eq(&email),
                users::time_zone.eq(&time_zone),
                users::updated_at.eq(now()),
            ))
            .execute(conn)
            .await
    })?;
    Ok(ProfileDetails { display_name, email, time_zone })
}
