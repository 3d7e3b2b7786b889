//! Exit codes and the one-line error report.
//!
//! Every failure ends the process with one line on standard error, `error: ` and what went
//! wrong, and an exit code a script can branch on (see [`EXIT_CODES_HELP`]). Failures are
//! classified by walking the error chain: the CLI's own [`Failure`] kinds, then the client
//! library's [`ClientError`] variants; anything else is a plain error.

use std::process::ExitCode;

use rivulet_client::ClientError;

/// Success.
pub(crate) const OK: u8 = 0;
/// Any failure not covered below.
pub(crate) const OTHER: u8 = 1;
/// The command line is wrong: unknown or malformed flags and values, or a value the server
/// refused as invalid (a bad topic name, a setting out of range).
pub(crate) const USAGE: u8 = 2;
/// The topic, partition or group named does not exist.
pub(crate) const NOT_FOUND: u8 = 3;
/// The server could not be reached, or the connection failed during the command.
pub(crate) const UNREACHABLE: u8 = 4;

/// The exit codes, for `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "\
EXIT CODES:
    0  success
    1  any other error (the error line says what)
    2  usage error: bad flags or values, or a value the server refused as invalid
    3  not found: the topic, partition or group does not exist
    4  server unreachable: no connection, or the connection failed during the command";

/// A failure the CLI detects itself, with the exit code it maps to.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A flag or value the CLI refuses after parsing (exit 2).
    Usage(String),
    /// Something named on the command line does not exist (exit 3).
    NotFound(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(message) | Failure::NotFound(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Failure {}

/// Shorthand for a usage failure as an `anyhow::Error`.
pub(crate) fn usage_error(message: impl Into<String>) -> anyhow::Error {
    Failure::Usage(message.into()).into()
}

/// Shorthand for a not-found failure as an `anyhow::Error`.
pub(crate) fn not_found(message: impl Into<String>) -> anyhow::Error {
    Failure::NotFound(message.into()).into()
}

/// The exit code for `err`.
pub(crate) fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return match failure {
                Failure::Usage(_) => USAGE,
                Failure::NotFound(_) => NOT_FOUND,
            };
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return match client {
                ClientError::NotFound { .. } | ClientError::UnknownPartition { .. } => NOT_FOUND,
                ClientError::Connect { .. }
                | ClientError::Transport { .. }
                | ClientError::Unavailable { .. }
                | ClientError::Timeout { .. } => UNREACHABLE,
                ClientError::InvalidAddress { .. } | ClientError::InvalidArgument { .. } => USAGE,
                _ => OTHER,
            };
        }
    }
    OTHER
}

/// Prints `err` as one line on standard error and returns its exit code.
pub(crate) fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(&format!("{err:#}")));
    ExitCode::from(code(err))
}

/// Reports a command-line parse failure. Help and version go to standard output with exit 0,
/// and a bare `rivulet` or `rivulet topic` prints help with the usage code, as clap does; a
/// real parse error becomes one line with a pointer to `--help`.
pub(crate) fn usage(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;

    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            return ExitCode::from(OK);
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return ExitCode::from(USAGE);
        }
        _ => {}
    }
    let rendered = err.render().to_string();
    // Clap's message is the text before the usage block; its lines (a list of missing
    // arguments, a tip) are joined into one.
    let message = rendered.split("\nUsage:").next().unwrap_or(&rendered);
    let message = message.replace("For more information, try '--help'.", "");
    let message = one_line(&message);
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("error: {message} (see --help)");
    ExitCode::from(USAGE)
}

/// `text` with every run of line breaks and the indentation after them turned into one
/// space, so an error never spans more than one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(
            one_line("error: the following required arguments were not provided:\n  <TOPIC>\n\n"),
            "error: the following required arguments were not provided: <TOPIC>"
        );
    }

    #[test]
    fn client_errors_map_to_their_exit_codes() {
        let not_found = anyhow::Error::new(ClientError::NotFound {
            operation: "DescribeTopic",
            message: "no topic".into(),
        })
        .context("cannot describe topic");
        assert_eq!(code(&not_found), NOT_FOUND);
        let refused = anyhow::Error::new(ClientError::Connect {
            address: "http://127.0.0.1:1".into(),
            reason: "refused".into(),
        });
        assert_eq!(code(&refused), UNREACHABLE);
        assert_eq!(code(&usage_error("bad")), USAGE);
        assert_eq!(code(&anyhow::anyhow!("other")), OTHER);
    }
}
