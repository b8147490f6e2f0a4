//! `pup completions SHELL`: a completion script on standard output.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::error::CliError;

#[derive(Args)]
pub struct Completions {
    /// The shell, e.g. `pup completions bash > /etc/bash_completion.d/pup`.
    shell: Shell,
}

impl Completions {
    pub fn run(&self) -> Result<(), CliError> {
        let mut command = super::Cli::command();
        clap_complete::generate(self.shell, &mut command, "pup", &mut std::io::stdout());
        Ok(())
    }
}
