//! How the agent's and the CLI's errors are classified and said: the typed markers carried in
//! an `anyhow` chain ([`Refused`], [`RefusedByCa`], [`RootMismatch`], [`ExitWith`]), the one
//! exit code per outcome ([`exit`], [`exit_code`]), and [`describe`], which says an error and
//! its causes on one line, each cause once.
//!
//! The markers are found again by downcasting, so a context added on the way up never changes
//! the exit code.

/// Bad command line or input, found before any request was made: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The CA refused the request: a 4xx answer, or with `issue --local` the CA's policy. The
/// same request will be refused again: exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("refused by the CA: {0}")]
pub struct RefusedByCa(pub String);

/// The server's root is not the one pinned by `--root-fingerprint` (fatal, never retried):
/// exit code 4.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RootMismatch(pub String);

/// Exit codes, the same for every command (README, "Exit status"; also listed in the
/// `--help` of `signet bootstrap` and `signet renew`).
pub mod exit {
    /// The CA could not be reached (or kept answering 5xx/429) within --timeout, or a local
    /// failure (files, an unexpected answer).
    pub const FAILED: u8 = 1;
    /// Bad command line or input (bad flag, missing token file, unreadable --ca-file).
    pub const USAGE: u8 = 2;
    /// The CA refused the request (4xx: bad or replayed token, name or profile not allowed,
    /// revoked or expired certificate). Retrying the same request cannot succeed.
    pub const REFUSED: u8 = 3;
    /// The root the CA presented does not have the pinned --root-fingerprint, or --ca-file
    /// does not hold it.
    pub const ROOT_MISMATCH: u8 = 4;
    /// An OCSP responder says the certificate is revoked or unknown (`signet staple`,
    /// `signet inspect --ocsp`).
    pub const NOT_GOOD: u8 = 5;
}

/// The exit code table for `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0  success (a certificate was written, or the current one is still good)
  1  failure: the CA was unreachable or answered 5xx/429 until --timeout ran out, or a local
     error (files, an unexpected answer)
  2  bad command line or input (e.g. a missing token file)
  3  refused by the CA (HTTP 400/401/403/404/409/413/415/422): the problem detail is printed;
     retrying the same request cannot help
  4  root fingerprint mismatch: the CA presented another root than --root-fingerprint names";

/// An error that ends the process with its own exit code (see [`exit`]).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitWith {
    /// The process exit code.
    pub code: u8,
    /// What went wrong, with its causes.
    pub message: String,
}

impl ExitWith {
    /// Wrap a message with an exit code.
    pub fn error(code: u8, message: impl Into<String>) -> anyhow::Error {
        ExitWith {
            code,
            message: message.into(),
        }
        .into()
    }
}

/// The process exit code for an error, the same for every command (README, "Exit status"):
/// 1 failure, 2 bad command line or input, 3 refused by the CA, 4 root fingerprint
/// mismatch, 5 revoked or unknown (OCSP).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(w) = e.downcast_ref::<ExitWith>() {
        w.code
    } else if e.downcast_ref::<RootMismatch>().is_some() {
        exit::ROOT_MISMATCH
    } else if e.downcast_ref::<RefusedByCa>().is_some() {
        exit::REFUSED
    } else if e.downcast_ref::<Refused>().is_some() {
        exit::USAGE
    } else {
        exit::FAILED
    }
}

/// An error shown through [`describe`] in a format string or log message.
#[derive(Debug)]
pub struct Causes<'a>(pub &'a anyhow::Error);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(self.0))
    }
}

/// An error and its causes on one line, each said once.
///
/// Many error types both print their source and return it from `source()` (the store's and
/// the CA's I/O errors, sqlx, reqwest), and a context often names the file the error names
/// again; printing the chain naively says "No such file or directory (os error 2)" twice.
/// Here a cause already said is dropped, and so are the leading `part: ` segments of a cause
/// that the message already holds (a path named by both the context and the error).
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let mut rest = text.trim();
        while let Some((head, tail)) = rest.split_once(": ") {
            if !head.is_empty() && !tail.is_empty() && out.contains(head) {
                rest = tail;
            } else {
                break;
            }
        }
        if rest.is_empty() || out.contains(rest) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_said_once() {
        // An error that prints its source and also returns it, under a context naming the
        // same file.
        let ca = signet_ca::read_private_key_file(std::path::Path::new("/nonexistent/k.key"), None)
            .expect_err("missing");
        let e = anyhow::Error::new(ca).context("reading the provisioner key /nonexistent/k.key");
        assert_eq!(
            describe(&e),
            "reading the provisioner key /nonexistent/k.key: No such file or directory (os error 2)"
        );
        let e = anyhow::anyhow!("inner").context("outer").context("top");
        assert_eq!(describe(&e), "top: outer: inner");
        assert_eq!(exit_code(&anyhow::Error::new(Refused("x".into()))), 2);
        assert_eq!(exit_code(&anyhow::Error::new(RefusedByCa("x".into()))), 3);
        assert_eq!(
            exit_code(&anyhow::Error::new(RootMismatch("x".into())).context("c")),
            4
        );
        assert_eq!(exit_code(&anyhow::anyhow!("x")), 1);
    }
}
