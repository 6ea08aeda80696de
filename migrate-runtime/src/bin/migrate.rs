//! The standalone `migrate` command: every subcommand over a migrations directory read at
//! run time (`--dir`, `MIGRATIONS_DIR`, default `./migrations`), plus `new`.

fn main() -> std::process::ExitCode {
    migrate_runtime::cli::directory_main()
}
