//! `pup completions SHELL`: a completion script on standard output.

use std::io::Write;

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
        // Into a buffer first: clap_complete panics when its writer fails (a closed pipe).
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut command, "pup", &mut script);
        match std::io::stdout().write_all(&script) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(CliError::new(format!("cannot write to standard output: {e}")))
            }
            _ => Ok(()),
        }
    }
}
