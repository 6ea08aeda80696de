//! The `migrate` command line: the subcommands an application binary gets over its embedded
//! migrations, with one call ([`main`]) or nested in its own clap command line
//! ([`MigrateArgs`], [`run_parsed`]), and the standalone `migrate` binary over a directory
//! read at run time ([`directory_main`]).
//!
//! ```no_run
//! static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//!
//! fn main() -> std::process::ExitCode {
//!     // `myapp migrate up`, `myapp migrate status --json`, ...
//!     if std::env::args().nth(1).as_deref() == Some("migrate") {
//!         return migrate_runtime::cli::main(MIGRATIONS);
//!     }
//!     // ... the application itself
//!     std::process::ExitCode::SUCCESS
//! }
//! ```
//!
//! Exit codes: see [`exit`].

mod fleet;
mod interrupt;
mod output;
mod progress;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};
use postgres::Client;

use crate::config::{ConfigError, ConnectionSettings};
use crate::{source, Error, LockScope, Migration, Migrator, OtherTool, Phase, Progress, Repair};
use output::Output;

pub use crate::outcome::exit;

const EXIT_CODES: &str = "Exit codes: 0 success; 1 a migration or check failed; 2 usage, configuration or connection error; 3 `status --exit-code` found pending migrations; 4 not done yet, and a later run gets past it: `check` found the database not ready for these migrations, or `fleet` left tenants that were unreachable, lost their connection or found their lock busy (no migration failed); 130 interrupted (SIGINT) and 143 terminated (SIGTERM): the running statement was cancelled.";

/// The `migrate` subcommands and their options, to nest under an application's own clap
/// command line (`myapp migrate up`); [`run_parsed`] runs the parsed value over the
/// application's embedded migrations. It has no `new` and no `--dir`: those create and read
/// files in a migrations directory, which only the standalone `migrate` binary has.
///
/// ```no_run
/// use std::process::ExitCode;
///
/// use clap::{Parser, Subcommand};
///
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(subcommand)]
///     command: Command,
/// }
///
/// #[derive(Subcommand)]
/// enum Command {
///     /// Start the service.
///     Serve,
///     /// Apply and inspect the database's migrations.
///     Migrate(migrate_runtime::cli::MigrateArgs),
/// }
///
/// fn main() -> ExitCode {
///     match Cli::parse().command {
///         Command::Serve => ExitCode::SUCCESS, // ... the application
///         // `myapp migrate up`, `myapp migrate status --json`, ...
///         Command::Migrate(args) => migrate_runtime::cli::run_parsed(MIGRATIONS, args),
///     }
/// }
/// ```
///
/// The same command line, given its arguments, run here against a throwaway database:
///
/// ```
/// use clap::{Parser, Subcommand};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// #[derive(Parser)]
/// struct Cli {
///     #[command(subcommand)]
///     command: Command,
/// }
///
/// #[derive(Subcommand)]
/// enum Command {
///     Serve,
///     Migrate(migrate_runtime::cli::MigrateArgs),
/// }
///
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// let url = database.url();
/// let cli = Cli::parse_from(["myapp", "migrate", "up", "--database-url", &url]);
/// if let Command::Migrate(args) = cli.command {
///     migrate_runtime::cli::run_parsed(MIGRATIONS, args);
/// }
/// let applied = migrate_runtime::Migrator::new(MIGRATIONS).applied(&mut database.client()?)?;
/// assert_eq!(applied.len(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct MigrateArgs {
    // Boxed: an application's enum of subcommands stays small (clippy's large_enum_variant).
    #[command(subcommand)]
    command: Box<Command>,
    #[command(flatten)]
    options: Box<Options>,
}

/// The command line of [`run_embedded`]: the nested arguments as a whole program.
#[derive(Debug, Parser)]
#[command(
    name = "migrate",
    version,
    about = "Apply and inspect PostgreSQL migrations."
)]
struct Embedded {
    #[command(flatten)]
    args: MigrateArgs,
}

/// The standalone binary's command line: the embedded one, plus `new` and `--dir`.
#[derive(Debug, Parser)]
#[command(name = "migrate", version, about = "Apply and inspect PostgreSQL migrations.", after_help = EXIT_CODES)]
struct Standalone {
    /// What to do.
    #[command(subcommand)]
    command: StandaloneCommand,
    #[command(flatten)]
    options: Options,
    /// Migrations directory (default ./migrations).
    #[arg(long, global = true, env = "MIGRATIONS_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The standalone binary's subcommands.
#[derive(Debug, Subcommand)]
enum StandaloneCommand {
    #[command(flatten)]
    Shared(Command),
    /// Create a new migration file.
    New {
        /// Letters, digits and underscores, e.g. add_user_roles.
        name: String,
    },
    /// Replace the migrations up to a version by one squash file, built by replaying them on a throwaway server and dumping the result (pg_dump); their files are deleted.
    Squash {
        /// The highest version the squash replaces.
        #[arg(long, value_name = "VERSION")]
        through: i64,
    },
}

/// The global options, which every subcommand takes.
#[derive(Clone, Debug, Args)]
pub(crate) struct Options {
    /// PostgreSQL URL; otherwise DATABASE_URL, then DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD, then PGHOST/PGPORT/...
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) database_url: Option<String>,
    /// Apply to a throwaway PostgreSQL server started for this command and removed when it ends, instead of a configured database (for demos; refused in production).
    #[arg(long, global = true, conflicts_with = "database_url")]
    pub(crate) throwaway: bool,
    /// Keep retrying the connection for up to this many seconds (for a server starting beside the app).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 0)]
    pub(crate) wait: u64,
    /// The environment, e.g. `production`: selects `-- migrate:env` migrations, is recorded in the history, and in production makes down/redo/repair/baseline ask for --yes.
    #[arg(long = "env", global = true, env = "MIGRATE_ENV", value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub(crate) environment: Option<String>,
    /// Confirm a destructive command in production (also: CONFIRM_PRODUCTION_MIGRATION=true).
    #[arg(long, global = true)]
    pub(crate) yes: bool,
    /// Machine-readable output (documented shape) on standard output.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Show each statement that runs.
    #[arg(long, short, global = true)]
    pub(crate) verbose: bool,
    /// Who the history records as running the command (default: the database user).
    #[arg(long, global = true, env = "MIGRATE_APPLIED_BY", value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub(crate) applied_by: Option<String>,
    /// Schema of the history tables.
    #[arg(long, global = true, default_value = "public", value_name = "SCHEMA")]
    pub(crate) history_schema: String,
    /// Name of the history table (the action log is this name plus `_history`).
    #[arg(
        long,
        global = true,
        default_value = "schema_migrations",
        value_name = "TABLE"
    )]
    pub(crate) history_table: String,
    /// How long to wait for another process's migration lock before giving up.
    #[arg(
        long,
        global = true,
        env = "MIGRATE_LOCK_WAIT",
        value_name = "SECONDS",
        default_value_t = 60
    )]
    pub(crate) lock_wait: u64,
    /// `session` (default): one advisory lock for the whole run; `transaction`: behind a pooler in transaction mode (PgBouncer), every transaction locks and re-checks the history.
    #[arg(long, global = true, env = "MIGRATE_LOCK_SCOPE", value_enum, default_value_t = LockScope::Session, value_name = "SCOPE")]
    pub(crate) lock_scope: LockScope,
    /// How long each migration's transaction waits for a table lock before it is rolled back and tried again (e.g. `500ms`, `2s`; `off`: the session's own lock_timeout).
    #[arg(long, global = true, env = "MIGRATE_LOCK_TIMEOUT", value_name = "DURATION", default_value = "500ms", value_parser = limit)]
    pub(crate) lock_timeout: Limit,
    /// The statement_timeout of each migration's transaction (`off`: the session's own).
    #[arg(long, global = true, env = "MIGRATE_STATEMENT_TIMEOUT", value_name = "DURATION", default_value = "off", value_parser = limit)]
    pub(crate) statement_timeout: Limit,
    /// How long one migration may keep being retried after lock timeouts and deadlocks, pauses included.
    #[arg(long, global = true, env = "MIGRATE_LOCK_RETRY_BUDGET", value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub(crate) lock_retry_budget: Duration,
    /// At most this many attempts per migration (default: as many as the budget allows).
    #[arg(long, global = true, env = "MIGRATE_LOCK_ATTEMPTS", value_name = "N")]
    pub(crate) lock_attempts: Option<u32>,
}

/// A time limit, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limit(Option<Duration>);

fn limit(text: &str) -> Result<Limit, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(Limit(None));
    }
    source::parse_duration(text).map(|limit| Limit((!limit.is_zero()).then_some(limit)))
}

fn duration(text: &str) -> Result<Duration, String> {
    source::parse_duration(text)
}

/// The subcommands an embedded set has.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum Command {
    /// Apply pending migrations.
    Up {
        /// Stop after this version.
        #[arg(long, value_name = "VERSION")]
        to: Option<i64>,
        /// Apply everything pending in one transaction.
        #[arg(long)]
        grouped: bool,
        /// Print the plan and the SQL instead of applying.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: run it inside a transaction that is rolled back, to find failures.
        #[arg(long, requires = "dry_run")]
        execute: bool,
        /// Allow a pending migration older than the newest applied one.
        #[arg(long)]
        allow_out_of_order: bool,
        /// `pre-deploy` stops before the first pending post-deploy migration; `post-deploy` (once the new version is fully rolled out) applies everything pending.
        #[arg(long, value_enum, default_value_t = Phase::PreDeploy, value_name = "PHASE")]
        phase: Phase,
        /// Check each migration against the data-safety policy before it commits, and roll back one that breaks it.
        #[arg(long)]
        safety: bool,
        /// With --safety: let migrations change the row counts of existing tables.
        #[arg(long, requires = "safety")]
        allow_row_changes: bool,
        /// With --safety: let migrations add, drop or change constraints of existing tables.
        #[arg(long, requires = "safety")]
        allow_constraint_changes: bool,
        /// With --safety: refuse new tables.
        #[arg(long, requires = "safety")]
        forbid_table_creation: bool,
        /// With --safety: refuse new columns on existing tables.
        #[arg(long, requires = "safety")]
        forbid_column_addition: bool,
    },
    /// Revert the newest applied migrations (one by default).
    Down {
        /// How many to revert.
        #[arg(conflicts_with_all = ["to", "all"])]
        count: Option<usize>,
        /// Revert every migration above this version (any integer; below the lowest
        /// version, everything).
        #[arg(
            long,
            value_name = "VERSION",
            allow_negative_numbers = true,
            conflicts_with = "all"
        )]
        to: Option<i64>,
        /// Revert every applied migration, newest first (diesel's `00000000000000` too).
        #[arg(long)]
        all: bool,
        /// Go on past migrations without a DOWN section: record each as rolled back without
        /// running any SQL (what its UP did stays in the database).
        #[arg(long)]
        through_irreversible: bool,
    },
    /// Revert an applied migration and apply it again.
    Redo {
        /// The migration's version.
        version: i64,
    },
    /// Every migration's state.
    Status {
        /// Exit with 3 when something is pending (for CI gates).
        #[arg(long)]
        exit_code: bool,
    },
    /// What `up` would do, or why it would refuse.
    Plan {
        /// The phase `up` would run in (see `up --phase`).
        #[arg(long, value_enum, default_value_t = Phase::PreDeploy, value_name = "PHASE")]
        phase: Phase,
    },
    /// Whether the database has every migration this binary needs (its pre-deploy ones); a database a newer release migrated further is ready. Takes no lock, writes nothing; exit 0 ready, 4 not ready.
    Check {
        /// Poll (once a second) until the database is ready, for up to this many seconds.
        #[arg(long, value_name = "SECONDS")]
        wait_ready: Option<u64>,
        /// `post-deploy`: also require the post-deploy migrations.
        #[arg(long, value_enum, default_value_t = Phase::PreDeploy, value_name = "PHASE")]
        phase: Phase,
    },
    /// Every check `up` makes, without running anything.
    Validate,
    /// The action log.
    History,
    /// Record migrations as applied without running them (for an existing schema).
    Baseline {
        /// Record every migration up to this version.
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        version: Option<i64>,
        /// Import the versions another tool applied (our history must be empty).
        #[arg(long, value_enum)]
        from: Option<OtherTool>,
        /// Why (recorded in the action log).
        #[arg(long, default_value = "baseline from the command line")]
        reason: String,
    },
    /// Record how a stopped migration was resolved by hand, or accept an edited file.
    Repair {
        /// The migration's version.
        version: i64,
        /// What to record.
        #[arg(long, value_enum)]
        mark: Repair,
        /// Why (recorded in the action log, with who).
        #[arg(long)]
        reason: String,
    },
    /// Check every migration on a throwaway server: UP, DOWN, the schema as before, UP again.
    Verify {
        /// Stop at the first migration with a problem.
        #[arg(long)]
        stop_at_first: bool,
        /// Count migrations without a DOWN section as failures.
        #[arg(long)]
        deny_irreversible: bool,
        /// Accept a DOWN that gives the columns back in another order.
        #[arg(long)]
        allow_column_order: bool,
    },
    /// Compare the database with the schema its applied migrations produce on a throwaway server.
    Drift,
    /// Many tenants (schemas of one database, or databases) with one migration set: `fleet up|status|plan`.
    Fleet {
        /// What to do to the fleet.
        #[command(subcommand)]
        command: Box<fleet::FleetCommand>,
    },
    /// Report risky DDL in UP sections (rules allowed by `-- migrate:allow` are listed, not counted).
    Lint,
    /// Serve the admin HTTP endpoint (GET/POST /migrations, GET /migrations/history); needs INTERNAL_ADMIN_TOKEN, refused in production.
    #[cfg(feature = "http")]
    Serve {
        /// Address to listen on (port 0: any free port; the address is printed on standard error).
        #[arg(long, default_value = "127.0.0.1:9191", value_name = "ADDR")]
        listen: String,
        /// Serve the routes under this path, e.g. /api for /api/migrations.
        #[arg(long, default_value = "", value_name = "PATH")]
        prefix: String,
    },
}

/// Runs the command line over an application's embedded migrations, reading the process
/// arguments after the program name (so `myapp migrate up` parses as `migrate up`).
///
/// ```no_run
/// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
/// let code = migrate_runtime::cli::main(MIGRATIONS);
/// ```
pub fn main(migrations: &[Migration]) -> ExitCode {
    run_embedded(migrations, std::env::args_os().skip(1))
}

/// [`main`] with explicit arguments; the first is the name shown in help.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let url = database.url();
/// let code = migrate_runtime::cli::run_embedded(MIGRATIONS, ["migrate", "up", "--database-url", &url]);
/// # let _ = code;
/// let applied = migrate_runtime::Migrator::new(MIGRATIONS).applied(&mut database.client()?)?;
/// assert_eq!(applied.len(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run_embedded<I, T>(migrations: &[Migration], args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Embedded::try_parse_from(args) {
        Ok(embedded) => run_parsed(migrations, embedded.args),
        Err(error) => usage(&error),
    }
}

/// Runs `migrate` arguments that the application's own clap command line parsed (see
/// [`MigrateArgs`]) over its embedded migrations: what `myapp migrate ...` does, with the
/// same output and [`exit`] codes as [`main`].
///
/// ```
/// use clap::Parser;
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// #[derive(Parser)]
/// struct App {
///     #[command(flatten)]
///     migrate: migrate_runtime::cli::MigrateArgs,
/// }
///
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let url = database.url();
/// let args = App::parse_from(["myapp", "up", "--to", "3", "--database-url", &url]).migrate;
/// migrate_runtime::cli::run_parsed(MIGRATIONS, args);
/// let applied = migrate_runtime::Migrator::new(MIGRATIONS).applied(&mut database.client()?)?;
/// assert_eq!(applied.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run_parsed(migrations: &[Migration], args: MigrateArgs) -> ExitCode {
    let MigrateArgs { command, options } = args;
    finish(&options, |output| {
        execute(&options, &command, migrations, output)
    })
}

/// The command line over several migration sets (an application's and its libraries'; see
/// [`crate::Migrator::sets`]), reading the process arguments after the program name. `up`
/// applies every set in the order their `-- migrate:requires set:version` lines allow (it
/// takes `--phase` and `--allow-out-of-order`; `--to`, `--grouped`, `--dry-run` and
/// `--safety` name one set's versions and are refused); every other command runs on each set
/// in turn, with a `set NAME:` line on standard error before each (with `--json`, one
/// document per set, in order). The exit code is the highest of the sets'.
///
/// ```no_run
/// use migrate_runtime::MigrationSet;
/// # static APP: &[migrate_runtime::Migration] = &[];
/// # static QUEUE: &[migrate_runtime::Migration] = &[];
/// let code = migrate_runtime::cli::main_sets(&[MigrationSet::new("app", APP), MigrationSet::new("queue", QUEUE)]);
/// ```
pub fn main_sets(sets: &[crate::MigrationSet<'_>]) -> ExitCode {
    match Embedded::try_parse_from(std::env::args_os().skip(1)) {
        Ok(embedded) => {
            let MigrateArgs { command, options } = embedded.args;
            finish(&options, |output| {
                execute_sets(&options, &command, sets, output)
            })
        }
        Err(error) => usage(&error),
    }
}

/// [`main_sets`]' commands.
fn execute_sets(
    options: &Options,
    command: &Command,
    sets: &[crate::MigrationSet<'_>],
    output: &Output,
) -> Result<u8, Failure> {
    let options_of = |set: &crate::MigrationSet<'_>| {
        let mut options = options.clone();
        options.history_table = set.history_table();
        options
    };
    if let Command::Up {
        to,
        grouped,
        dry_run,
        allow_out_of_order,
        phase,
        safety,
        ..
    } = command
    {
        if to.is_some() || *grouped || *dry_run || *safety {
            return Err(Failure::Usage(
                "with several migration sets, `up` takes --phase and --allow-out-of-order only: --to, --grouped, --dry-run and --safety name one set's versions".to_owned(),
            ));
        }
        guard_production(options, command)?;
        let migrators = sets
            .iter()
            .map(|set| {
                let migrator = migrator(&options_of(set), set.migrations())
                    .phase(*phase)
                    .allow_out_of_order(*allow_out_of_order);
                (set.name(), migrator)
            })
            .collect();
        let (mut client, _server) = connect(options, output)?;
        let reports = crate::Sets::from_migrators(migrators).run(&mut client)?;
        return output.per_set(
            &reports,
            |(set, _)| set,
            |(_, report)| {
                output.report(report);
                Ok(exit::SUCCESS)
            },
        );
    }
    output.per_set(
        sets,
        |set| set.name(),
        |set| execute(&options_of(set), command, set.migrations(), output),
    )
}

/// The standalone `migrate` binary: the same commands over a directory read at run time
/// (`--dir`, `MIGRATIONS_DIR`, default `./migrations`), plus `new`.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     migrate_runtime::cli::directory_main()
/// }
/// ```
pub fn directory_main() -> ExitCode {
    let cli = match Standalone::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage(&error),
    };
    // An empty root keeps printed paths as the user wrote them (`migrations/...`).
    let directory = cli
        .dir
        .as_deref()
        .map_or_else(|| "migrations".to_owned(), |dir| dir.display().to_string());
    finish(&cli.options, |output| match &cli.command {
        StandaloneCommand::New { name } => new_migration(&directory, name, output),
        StandaloneCommand::Squash { through } => {
            let loaded = source::read_dir(Path::new(""), &directory).map_err(Failure::Files)?;
            squash(
                &cli.options,
                &directory,
                &loaded.migrations,
                *through,
                output,
            )
        }
        StandaloneCommand::Shared(command) => {
            let loaded = source::read_dir(Path::new(""), &directory).map_err(Failure::Files)?;
            execute(&cli.options, command, &loaded.migrations, output)
        }
    })
}

/// Prints clap's refusal (or the help or version it was asked for) and its exit code.
fn usage(error: &clap::Error) -> ExitCode {
    let _ = error.print();
    ExitCode::from(if error.use_stderr() {
        exit::USAGE
    } else {
        exit::SUCCESS
    })
}

/// Runs a parsed command and prints how it ended.
fn finish(options: &Options, command: impl FnOnce(&Output) -> Result<u8, Failure>) -> ExitCode {
    let output = Output::new(options.json);
    let result = command(&output);
    interrupt::disarm();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            let failure = match interrupt::received() {
                Some(signal) => Failure::Interrupted {
                    signal,
                    cause: Box::new(failure),
                },
                None => failure,
            };
            output.failure(&failure);
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Why a command stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad usage: nothing was attempted.
    Usage(String),
    /// No database, bad connection settings, or no connection: nothing was attempted.
    Config(ConfigError),
    /// Problems in the migration files (directory mode).
    Files(source::Diagnostics),
    /// A migration or a check failed.
    Migrate(Error),
    /// `fleet`: the database that names or holds the tenants could not be reached; a rerun
    /// may get past it.
    Unreachable(ConfigError),
    /// `fleet`: the tenants could not be listed for a reason a rerun may get past.
    Retry(String),
    /// A signal stopped the command: its running statement was cancelled, and `cause` is how
    /// the command ended.
    Interrupted {
        /// Which signal.
        signal: interrupt::Signal,
        /// The failure the cancelled statement led to.
        cause: Box<Failure>,
    },
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::Config(_) => exit::USAGE,
            Failure::Files(_) => exit::FAILED,
            Failure::Unreachable(_) | Failure::Retry(_) => exit::RETRY,
            Failure::Migrate(error) => crate::outcome::of(error).exit_code,
            Failure::Interrupted { signal, .. } => signal.exit_code(),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Failure::Config(error)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Migrate(error)
    }
}

fn execute(
    options: &Options,
    command: &Command,
    migrations: &[Migration],
    output: &Output,
) -> Result<u8, Failure> {
    match command {
        Command::Lint => return Ok(output.lint(&lint_all(migrations), migrations)),
        Command::Verify {
            stop_at_first,
            deny_irreversible,
            allow_column_order,
        } => {
            output.note("verify: UP, DOWN, UP of each migration on a throwaway PostgreSQL server");
            let server = crate::testing::TestServer::start()
                .map_err(|error| Failure::Usage(error.to_string()))?;
            let mut report = migrator(options, migrations).verify(&server, *stop_at_first)?;
            report.allow_column_order = *allow_column_order;
            return Ok(output.verified(&report, *deny_irreversible));
        }
        _ => {}
    }
    #[cfg(feature = "http")]
    if let Command::Serve { listen, prefix } = command {
        return serve(options, migrations, listen, prefix, output);
    }
    if let Command::Fleet { command } = command {
        // Each tenant has its own connection: there is no one database to connect to first.
        return fleet::execute(options, command, migrations, options.json);
    }
    guard_production(options, command)?;
    let observe = |progress: Progress<'_>| output.progress(progress);
    let migrator = migrator(options, migrations).on_progress(&observe);
    let (mut client, _server) = connect(options, output)?;
    let client = &mut client;
    match command {
        Command::Up {
            to,
            grouped,
            dry_run,
            execute,
            allow_out_of_order,
            phase,
            safety,
            allow_row_changes,
            allow_constraint_changes,
            forbid_table_creation,
            forbid_column_addition,
        } => {
            let mut migrator = migrator
                .grouped(*grouped)
                .allow_out_of_order(*allow_out_of_order)
                .phase(*phase);
            if *safety {
                migrator = migrator.safety(crate::SafetyPolicy {
                    allow_row_changes: *allow_row_changes,
                    allow_table_creation: !*forbid_table_creation,
                    allow_column_addition: !*forbid_column_addition,
                    allow_constraint_modification: *allow_constraint_changes,
                });
            }
            if let Some(to) = to {
                migrator = migrator.target(*to);
            }
            up(options, &migrator, client, *dry_run, *execute, output)
        }
        Command::Down {
            count,
            to,
            all,
            through_irreversible,
        } => {
            let migrator = migrator.clone().through_irreversible(*through_irreversible);
            let report = match (to, all) {
                (_, true) => migrator.down_to(client, i64::MIN)?,
                (Some(version), false) => migrator.down_to(client, *version)?,
                (None, false) => migrator.down(client, count.unwrap_or(1))?,
            };
            output.report(&report);
            Ok(exit::SUCCESS)
        }
        Command::Redo { version } => {
            output.report(&migrator.redo(client, *version)?);
            Ok(exit::SUCCESS)
        }
        Command::Status { exit_code } => {
            let status = migrator.status(client)?;
            output.status(&status);
            Ok(if *exit_code && status.pending() > 0 {
                exit::PENDING
            } else {
                exit::SUCCESS
            })
        }
        Command::Plan { phase } => {
            let plan = migrator.phase(*phase).plan(client)?;
            output.plan(&plan, options.verbose);
            match plan.refusal {
                Some(refusal) => Err(refusal.into()),
                None => Ok(exit::SUCCESS),
            }
        }
        Command::Check { wait_ready, phase } => {
            check(&migrator.phase(*phase), client, *wait_ready, output)
        }
        Command::Validate => {
            let plan = migrator.validate(client)?;
            output.validated(migrations.len(), plan.pending.len());
            Ok(exit::SUCCESS)
        }
        Command::History => {
            output.history(&migrator.history(client)?);
            Ok(exit::SUCCESS)
        }
        Command::Baseline {
            version,
            from,
            reason,
        } => {
            let recorded = match (version, from) {
                (_, Some(tool)) => migrator.baseline_from(client, *tool)?,
                (Some(version), None) => migrator.baseline(client, *version, reason)?,
                (None, None) => unreachable!("clap requires a version or --from"),
            };
            output.baselined(&recorded);
            Ok(exit::SUCCESS)
        }
        Command::Repair {
            version,
            mark,
            reason,
        } => {
            if matches!(mark, Repair::AcceptChecksum) && !confirmed(options) {
                return Err(Failure::Usage(
                    "accepting an edited file's checksum needs explicit confirmation: check the edit is harmless, then pass --yes".to_owned(),
                ));
            }
            migrator.repair(client, *version, *mark, reason)?;
            output.repaired(*version, *mark);
            Ok(exit::SUCCESS)
        }
        Command::Drift => {
            let server = crate::testing::TestServer::start()
                .map_err(|error| Failure::Usage(error.to_string()))?;
            Ok(output.drift(&migrator.drift(client, &server)?))
        }
        Command::Lint | Command::Verify { .. } | Command::Fleet { .. } => {
            unreachable!("handled before connecting")
        }
        #[cfg(feature = "http")]
        Command::Serve { .. } => unreachable!("handled before connecting"),
    }
}

/// Every lint finding of every migration, in version order.
fn lint_all(migrations: &[Migration]) -> Vec<source::lint::Finding> {
    source::lint::lint_set(migrations)
}

fn up(
    options: &Options,
    migrator: &Migrator<'_>,
    client: &mut Client,
    dry_run: bool,
    execute: bool,
    output: &Output,
) -> Result<u8, Failure> {
    if dry_run && execute {
        let outcomes = migrator.rehearse(client)?;
        let failed = output.rehearsal(&outcomes);
        return Ok(if failed { exit::FAILED } else { exit::SUCCESS });
    }
    if dry_run || is_production(options) || options.verbose {
        let plan = migrator.validate(client)?;
        output.plan(&plan, dry_run || options.verbose);
        if dry_run {
            return Ok(exit::SUCCESS);
        }
    }
    output.report(&migrator.run(client)?);
    // Nothing silent: what the phase left for later is said, with how to apply it.
    let waiting = migrator.plan(client)?.waiting;
    output.waiting(&waiting);
    Ok(exit::SUCCESS)
}

/// `check`: whether the database is ready for these migrations, polling with `--wait-ready`.
fn check(
    migrator: &Migrator<'_>,
    client: &mut Client,
    wait_ready: Option<u64>,
    output: &Output,
) -> Result<u8, Failure> {
    let deadline =
        wait_ready.map(|seconds| std::time::Instant::now() + Duration::from_secs(seconds));
    let mut told: Option<Vec<i64>> = None;
    loop {
        let readiness = migrator.check(client)?;
        let out_of_time = deadline.is_none_or(|deadline| std::time::Instant::now() >= deadline);
        if readiness.is_ready() || out_of_time {
            output.readiness(&readiness);
            return Ok(if readiness.is_ready() {
                exit::SUCCESS
            } else {
                exit::NOT_READY
            });
        }
        // Each change in what is missing is said once on stderr, so a wait is never silent.
        let missing: Vec<i64> = readiness.missing.iter().map(|m| m.version()).collect();
        if told.as_ref() != Some(&missing) {
            output.waiting_ready(&readiness);
            told = Some(missing);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `squash --through V`: the squash file written, the files it replaces deleted.
fn squash(
    options: &Options,
    directory: &str,
    migrations: &[Migration],
    through: i64,
    output: &Output,
) -> Result<u8, Failure> {
    output.note("squash: replaying the migrations on a throwaway PostgreSQL server");
    let server =
        crate::testing::TestServer::start().map_err(|error| Failure::Usage(error.to_string()))?;
    let squash = migrator(options, migrations).squash(&server, through)?;
    let written = Path::new(directory).join(&squash.file_name);
    let io = |what: String| move |error: std::io::Error| Failure::Usage(format!("{what}: {error}"));
    std::fs::write(&written, &squash.text).map_err(io(format!("writing {}", written.display())))?;
    for file in squash
        .files
        .iter()
        .filter(|file| Path::new(file) != written)
    {
        std::fs::remove_file(file).map_err(io(format!("deleting {file}")))?;
    }
    output.squashed(&written, &squash);
    Ok(exit::SUCCESS)
}

/// `new`: the next file in the directory's own numbering and layout.
fn new_migration(directory: &str, name: &str, output: &Output) -> Result<u8, Failure> {
    let now = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let created = source::scaffold(Path::new(""), directory, name, &now)
        .map_err(|error| Failure::Usage(error.to_string()))?;
    output.created(&created);
    Ok(exit::SUCCESS)
}

/// `serve`: the admin endpoint until the process is stopped. It refuses to start without a
/// token or in production, and checks the database answers before listening.
#[cfg(feature = "http")]
fn serve(
    options: &Options,
    migrations: &[Migration],
    listen: &str,
    prefix: &str,
    output: &Output,
) -> Result<u8, Failure> {
    use crate::http::{AdminServer, Handler};

    if options.throwaway {
        return Err(Failure::Usage(
            "`serve` manages a real database; --throwaway is not for it".to_owned(),
        ));
    }
    let settings = ConnectionSettings::from_env(options.database_url.as_deref())?
        .ok_or(ConfigError::NotConfigured)?;
    let token = std::env::var("INTERNAL_ADMIN_TOKEN").unwrap_or_default();
    let mut handler = Handler::new(migrations, settings.clone(), &token)
        .map_err(|error| serve_failure(error.into()))?
        .environment(options.environment.as_deref())
        .history_table(&options.history_schema, &options.history_table)
        .lock_wait(Duration::from_secs(options.lock_wait))
        .lock_scope(options.lock_scope)
        .mount(prefix);
    if let Some(who) = &options.applied_by {
        handler = handler.applied_by(who);
    }
    let server = AdminServer::bind(listen, &handler).map_err(serve_failure)?;
    output.connecting(&settings);
    drop(settings.connect_with_wait(Duration::from_secs(options.wait))?);
    output.note(&format!(
        "listening on http://{}{}/migrations",
        server.local_addr(),
        prefix.trim_end_matches('/')
    ));
    server.run();
    Ok(exit::SUCCESS)
}

/// A refusal to serve as a usage failure (its message starts with its own `error: `).
#[cfg(feature = "http")]
fn serve_failure(error: crate::http::ServeError) -> Failure {
    let message = error.to_string();
    Failure::Usage(
        message
            .strip_prefix("error: ")
            .unwrap_or(&message)
            .to_owned(),
    )
}

fn migrator<'m>(options: &Options, migrations: &'m [Migration]) -> Migrator<'m> {
    let mut migrator = Migrator::new(migrations)
        .history_table(&options.history_schema, &options.history_table)
        .lock_wait(Duration::from_secs(options.lock_wait))
        .lock_scope(options.lock_scope)
        .lock_timeout(options.lock_timeout.0)
        .statement_timeout(options.statement_timeout.0)
        .lock_retry_budget(options.lock_retry_budget);
    if let Some(attempts) = options.lock_attempts {
        migrator = migrator.lock_attempts(attempts);
    }
    if let Some(environment) = &options.environment {
        migrator = migrator.environment(environment);
    }
    if let Some(who) = &options.applied_by {
        migrator = migrator.applied_by(who);
    }
    migrator
}

fn is_production(options: &Options) -> bool {
    options
        .environment
        .as_deref()
        .is_some_and(|environment| environment.eq_ignore_ascii_case("production"))
}

fn confirmed(options: &Options) -> bool {
    options.yes
        || std::env::var("CONFIRM_PRODUCTION_MIGRATION")
            .is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

/// In production, commands that undo or rewrite history need explicit confirmation (seed 001).
fn guard_production(options: &Options, command: &Command) -> Result<(), Failure> {
    let destructive = match command {
        Command::Down { .. } => Some("down"),
        Command::Redo { .. } => Some("redo"),
        Command::Repair { .. } => Some("repair"),
        Command::Baseline { .. } => Some("baseline"),
        _ => None,
    };
    match destructive {
        Some(command) if is_production(options) && !confirmed(options) => Err(Failure::Usage(format!(
            "refusing to run `{command}` in production without confirmation: pass --yes or set CONFIRM_PRODUCTION_MIGRATION=true"
        ))),
        _ => Ok(()),
    }
}

/// A throwaway server kept alive for the command, when one was started.
type Throwaway = Option<crate::testing::TestServer>;

fn connect(options: &Options, output: &Output) -> Result<(Client, Throwaway), Failure> {
    let (settings, server) = if options.throwaway {
        throwaway(options, output)?
    } else {
        let settings = ConnectionSettings::from_env(options.database_url.as_deref())?
            .ok_or(ConfigError::NotConfigured)?;
        (settings, None)
    };
    output.connecting(&settings);
    let client = settings.connect_with_wait(Duration::from_secs(options.wait))?;
    interrupt::arm(settings.cancel_handle(&client)?);
    Ok((client, server))
}

/// `--throwaway`: a server started for this command, never in production.
fn throwaway(
    options: &Options,
    output: &Output,
) -> Result<(ConnectionSettings, Throwaway), Failure> {
    if is_production(options) {
        return Err(Failure::Usage(
            "--throwaway applies the migrations to a server that is removed afterwards; refusing it in production: name the production database (--database-url or DATABASE_URL) instead".to_owned(),
        ));
    }
    // Settings that are also configured are not used; say so rather than leave it unsaid.
    let ignored = match ConnectionSettings::from_env(None) {
        Ok(Some(settings)) => format!(" ({} is not used)", settings.source()),
        _ => String::new(),
    };
    output.note(&format!(
        "--throwaway: using a throwaway PostgreSQL server, removed when this command ends{ignored}"
    ));
    let server =
        crate::testing::TestServer::start().map_err(|error| Failure::Usage(error.to_string()))?;
    Ok((
        ConnectionSettings::from_config(server.config("postgres")),
        Some(server),
    ))
}
