use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = pgbelay::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGBELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match pgbelay::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgbelay: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
