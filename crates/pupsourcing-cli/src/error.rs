//! [`CliError`]: what went wrong, what to do about it, and the exit code.

use std::fmt;
use std::process::ExitCode;

/// Exit code of an error (a database, file or input problem): nothing more was done.
pub const FAILURE: u8 = 1;
/// Exit code of `pup status --check` when a projection lags past the threshold or failed.
pub const UNHEALTHY: u8 = 3;

/// An error the command line reports: one line saying what went wrong, an optional hint
/// saying what to do, and the process exit code.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    code: u8,
}

impl CliError {
    /// An error exiting with [`FAILURE`].
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, code: FAILURE }
    }

    /// Adds what the user can do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Exits with `code` instead.
    pub fn code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A library error, with its causes (a database error's driver and I/O errors), on one line.
impl From<pupsourcing_core::Error> for CliError {
    fn from(err: pupsourcing_core::Error) -> Self {
        CliError::new(chain(&err))
    }
}

impl From<pupsourcing_projection::ProjectionError> for CliError {
    fn from(err: pupsourcing_projection::ProjectionError) -> Self {
        CliError::new(chain(&err))
    }
}

/// `err` and its sources joined by ": ", skipping a source its parent already quotes.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
