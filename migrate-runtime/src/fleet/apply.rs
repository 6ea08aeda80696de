//! One tenant, exactly as [`Migrator::run`] migrates one database: its connection (a schema
//! tenant's with `search_path` set to its schema), its history table, and so its own lock.

use std::sync::Mutex;

use postgres::Client;
use postgres_protocol::escape::escape_identifier;

use super::report::{transient, SkipReason, TenantOutcome, TenantState};
use super::stop::FleetStopper;
use super::tenants::{Tenant, Tenants};
use crate::{CancelHandle, Error, Migrator, Progress};

/// The migrator for `tenant`: a schema tenant keeps its history (and so its lock key) in its
/// own schema, under the history table's name.
fn migrator_for<'m>(migrator: &Migrator<'m>, tenants: &Tenants, tenant: &Tenant) -> Migrator<'m> {
    match tenants.database {
        Some(_) => {
            let (_, table) = migrator.settings.tables.names();
            let table = table.to_owned();
            migrator.clone().history_table(&tenant.name, &table)
        }
        None => migrator.clone(),
    }
}

/// A connection for `tenant`. A schema tenant reuses the thread's connection to the shared
/// database (reconnecting when it broke) and sets its `search_path`; a database tenant gets a
/// connection of its own.
fn session<'c>(
    tenants: &Tenants,
    tenant: &Tenant,
    connection: &'c mut Option<Client>,
    search_path: bool,
) -> Result<&'c mut Client, Error> {
    let connect = |settings: &crate::config::ConnectionSettings| {
        settings
            .connect()
            .map_err(|error| Error::Connect(Box::new(error)))
    };
    let client = match (&tenants.database, &tenant.url) {
        (Some(database), _) => match connection.take() {
            Some(client) if !client.is_closed() => connection.insert(client),
            _ => connection.insert(connect(database)?),
        },
        (None, Some(url)) => connection.insert(connect(url)?),
        (None, None) => unreachable!("a database tenant always has a URL"),
    };
    if search_path && tenants.database.is_some() {
        // Only the tenant's schema: unqualified names in its migrations land there, and
        // nothing resolves to another tenant's objects.
        let sql = format!("SET search_path TO {}", escape_identifier(&tenant.name));
        client
            .batch_execute(&sql)
            .map_err(|source| Error::Database {
                context: format!("setting search_path to schema {}", tenant.name),
                source,
            })?;
    }
    Ok(client)
}

/// Migrates one tenant; `connection` is the calling thread's, kept across tenants. A stop
/// cancels its statements while it runs.
pub(crate) fn migrate(
    migrator: &Migrator<'_>,
    tenants: &Tenants,
    tenant: &Tenant,
    connection: &mut Option<Client>,
    stopper: &FleetStopper,
) -> TenantOutcome {
    let client = match session(tenants, tenant, connection, true) {
        Ok(client) => client,
        Err(error) => {
            *connection = None;
            return TenantOutcome::Unreachable { error };
        }
    };
    let settings = tenants.database.as_ref().or(tenant.url.as_ref());
    let cancel = settings
        .and_then(|settings| settings.cancel_handle(client).ok())
        .unwrap_or_else(|| CancelHandle::new(client));
    let Some(_running) = stopper.enter(cancel) else {
        return TenantOutcome::Skipped {
            reason: SkipReason::Interrupted,
        };
    };
    // What was applied before an error is known only from the progress calls.
    let applied = Mutex::new(Vec::new());
    let outer = migrator.observer;
    let record = |progress: Progress<'_>| {
        if let Progress::Applied(done) = progress {
            applied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(done.version);
        }
        if let Some(observer) = outer.0 {
            observer(progress);
        }
    };
    let result = migrator_for(migrator, tenants, tenant)
        .on_progress(&record)
        .run(client);
    let applied = applied.into_inner().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(report) if report.applied.is_empty() => TenantOutcome::UpToDate,
        Ok(report) => TenantOutcome::Applied {
            versions: report.applied.iter().map(|done| done.version).collect(),
        },
        Err(error) if stopper.is_stopped() => {
            *connection = None;
            TenantOutcome::Interrupted { applied, error }
        }
        Err(error) => {
            // A fresh session for the next tenant: nothing of this one's can linger.
            *connection = None;
            TenantOutcome::Failed {
                version: version_of(&error),
                applied,
                error,
            }
        }
    }
}

/// Where one tenant stands, from its history alone: no lock, one round trip.
pub(crate) fn state(
    migrator: &Migrator<'_>,
    tenants: &Tenants,
    tenant: &Tenant,
    connection: &mut Option<Client>,
) -> TenantState {
    let client = match session(tenants, tenant, connection, false) {
        Ok(client) => client,
        Err(error) => {
            *connection = None;
            return TenantState::Unreachable { error };
        }
    };
    let plan = migrator_for(migrator, tenants, tenant).plan(client);
    if tenants.database.is_none() {
        *connection = None;
    }
    match plan {
        Ok(plan) => match plan.refusal {
            Some(Error::Unfinished(unfinished)) => TenantState::FailedAt {
                version: unfinished.version,
            },
            Some(error) => TenantState::Refused { error },
            None if plan.pending.is_empty() => TenantState::UpToDate,
            None => TenantState::Pending {
                versions: plan.pending.iter().map(|m| m.version()).collect(),
            },
        },
        Err(error) if transient(&error) => {
            *connection = None;
            TenantState::Unreachable { error }
        }
        Err(error) => TenantState::Refused { error },
    }
}

/// The migration an error is about, when it is about one.
fn version_of(error: &Error) -> Option<i64> {
    match error {
        Error::MigrationFailed(failure) => Some(failure.version),
        Error::PolicyViolation(violation) => Some(violation.version),
        Error::Unfinished(unfinished) => Some(unfinished.version),
        Error::ChecksumMismatch { version, .. }
        | Error::VersionConflict { version, .. }
        | Error::OutOfOrder { version, .. } => Some(*version),
        _ => None,
    }
}
