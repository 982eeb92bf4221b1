//! `grantmux sim`. TODO(sim helper).

/// Flags of `grantmux sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {}

/// Runs the simulator until Ctrl-C.
pub async fn run(_args: SimArgs) -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
