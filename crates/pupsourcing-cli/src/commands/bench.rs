//! `pup bench`: the benchmark workloads of `pupsourcing-bench`.

use clap::Args;

use crate::backend::DatabaseArgs;
use crate::error::CliError;

#[derive(Args)]
pub struct Bench {}

impl Bench {
    pub fn run(&self, _db: &DatabaseArgs) -> Result<(), CliError> {
        Err(CliError::new("not yet"))
    }
}
