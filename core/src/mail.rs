//! E-mail: through an SMTP server when `smtp_url` is set, else written as `.eml` files to
//! the outbox folder (`mail_outbox`), as the SMS outbox does, so that a dashboard with no
//! mail server works and its messages can be read. Sections send with [`send`].

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::error::AppError;
use crate::hooks::{Service, Setting};
use crate::register;
use crate::state::{AppState, Settings};

register!(Setting {
    name: "smtp_url",
    help: "SMTP server for e-mail, e.g. smtps://user:password@mail.example.com (none: e-mails go to the outbox folder)",
    default: "",
    check: |value| match value {
        "" => Ok(()),
        url => AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map(|_| ()).map_err(|e| e.to_string()),
    },
});

register!(Setting {
    name: "mail_outbox",
    help: "Folder e-mails are written to when no SMTP server is set",
    default: "data/mail-outbox",
    check: |value| if value.trim().is_empty() { Err("name a folder".to_owned()) } else { Ok(()) },
});

register!(Setting {
    name: "mail_from",
    help: "Sender of the dashboard's e-mails",
    default: "Dashboard <dashboard@localhost>",
    check: |value| value.parse::<Mailbox>().map(|_| ()).map_err(|e| e.to_string()),
});

register!(Service {
    name: "mail",
    start: |settings, extensions| Mailer::start(settings).map(|mailer| extensions.insert(mailer)).map(|_| ())
});

/// Where e-mail goes.
#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
}

/// Sends the dashboard's e-mail (kept in the application state by its service).
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    fn start(settings: &Settings) -> Result<Mailer, String> {
        let from = settings.setting("mail_from").parse::<Mailbox>().map_err(|e| e.to_string())?;
        let transport = match settings.setting("smtp_url") {
            "" => {
                let folder = std::path::PathBuf::from(settings.setting("mail_outbox"));
                Transport::Outbox(AsyncFileTransport::new(&folder), folder)
            }
            url => {
                Transport::Smtp(AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| e.to_string())?.build())
            }
        };
        Ok(Mailer { transport, from })
    }
}

/// An e-mail address as typed, checked: `ann@example.com`.
pub fn address(text: &str) -> Result<String, AppError> {
    let text = text.trim();
    text.parse::<lettre::Address>()
        .map(|address| address.to_string())
        .map_err(|_| AppError::BadRequest(format!("{text:?} is not an e-mail address.")))
}

/// Sends a plain-text e-mail to each of `to` (one message each: recipients do not see
/// one another).
pub async fn send(state: &AppState, to: &[String], subject: &str, text: &str) -> Result<(), AppError> {
    let mailer = state.extension::<Mailer>()?;
    let failed = |e: &dyn std::fmt::Display| AppError::Unavailable(format!("the e-mail could not be sent: {e}"));
    for recipient in to {
        let message = Message::builder()
            .from(mailer.from.clone())
            .to(recipient.parse::<Mailbox>().map_err(|e| failed(&e))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_owned())
            .map_err(|e| failed(&e))?;
        match &mailer.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| failed(&e))?,
            Transport::Outbox(outbox, folder) => {
                tokio::fs::create_dir_all(folder).await.map_err(|e| failed(&e))?;
                outbox.send(message).await.map(|_| ()).map_err(|e| failed(&e))?
            }
        }
    }
    Ok(())
}
