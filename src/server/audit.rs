//! The audit log: one INFO line (target `asofdb::audit`) per statement that changes the schema
//! or may erase rows or change who may do what (`Statement::audited_kind`), whether it
//! succeeded or not, and per failed or refused login; each with the user and the client's
//! address.

use pgwire::api::{ClientInfo, METADATA_USER};

use crate::error::Result;
use crate::execute::Output;
use crate::sql::Statement;

/// An audited statement's text is logged up to this many characters.
const TEXT_CHARS: usize = 2000;

fn user<C: ClientInfo + ?Sized>(client: &C) -> String {
    client.metadata().get(METADATA_USER).cloned().unwrap_or_default()
}

/// A statement's text as logged: cut short, and without the passwords of role statements.
fn logged_text(kind: &str, text: &str) -> String {
    let text = if kind.ends_with("ROLE") { crate::sql::role::redact_passwords(text) } else { text.to_string() };
    text.chars().take(TEXT_CHARS).collect()
}

/// Records `statement` (sent as `text`) and its outcome, if the audit log records its kind.
pub fn statement<C: ClientInfo + ?Sized>(client: &C, statement: &Statement, text: &str, outcome: &Result<Output>) {
    let Some(kind) = statement.audited_kind() else { return };
    let statement = logged_text(kind, text);
    let outcome = match outcome {
        Ok(_) => "ok",
        Err(e) => e.sqlstate(),
    };
    tracing::info!(
        target: "asofdb::audit",
        kind,
        outcome,
        user = user(client),
        peer = %client.socket_addr(),
        statement,
        "audit"
    );
}

/// Records the statements of `text` that look audited when `text` did not parse (`error`):
/// none of them ran.
pub fn unparsed<C: ClientInfo + ?Sized>(client: &C, text: &str, error: &crate::error::Error) {
    for own in crate::sql::split_statements(text) {
        let Some(kind) = Statement::audited_words(own) else { continue };
        let statement = logged_text(kind, own);
        tracing::info!(
            target: "asofdb::audit",
            kind,
            outcome = error.sqlstate(),
            user = user(client),
            peer = %client.socket_addr(),
            statement,
            "audit"
        );
    }
}

/// Records a login that failed (`why`: a wrong password) or was refused (too many clients,
/// before the startup message is read: no user name).
pub fn login_failed<C: ClientInfo + ?Sized>(client: &C, sqlstate: &str, why: &str) {
    login_failed_as(client, &user(client), sqlstate, why);
}

/// Records a login of `user` refused before its startup message was taken in (a role
/// without LOGIN, at its connection limit).
pub fn login_failed_as<C: ClientInfo + ?Sized>(client: &C, user: &str, sqlstate: &str, why: &str) {
    tracing::info!(
        target: "asofdb::audit",
        kind = "LOGIN",
        outcome = sqlstate,
        user,
        peer = %client.socket_addr(),
        "audit: login failed: {why}"
    );
}
