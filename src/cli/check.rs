//! `pgbelay check SQL`: the policy's verdict, offline.

/// Arguments of `pgbelay check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The SQL to judge.
    pub sql: String,
    /// Print JSON for tooling.
    #[arg(long)]
    pub json: bool,
}

/// Prints the verdict; exit 0 allow/rewrite, 1 block, 2 usage error.
pub fn run(_args: CheckArgs) -> anyhow::Result<std::process::ExitCode> {
    Ok(std::process::ExitCode::from(2))
}
