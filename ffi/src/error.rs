//! Errors of the safe API.

use std::fmt;

/// What went wrong in a DPDK call or in using the API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// This build has no DPDK; the reason says what was missing and what to
    /// install.
    Unavailable {
        /// From `build.rs`: what was missing, and how to install it.
        reason: &'static str,
    },
    /// A DPDK call failed. `code` is the (positive) errno or rte_errno
    /// value; `message` is `rte_strerror(code)`.
    Dpdk {
        /// The DPDK function that failed.
        op: &'static str,
        /// errno / rte_errno value (positive).
        code: i32,
        /// `rte_strerror(code)`.
        message: String,
    },
    /// The EAL has not been initialised ([`crate::Eal::init`]).
    NotInitialized,
    /// [`crate::Eal::init`] was called again with other arguments; the EAL
    /// can be initialised only once per process.
    AlreadyInitialized {
        /// The arguments of the first, effective call.
        args: Vec<String>,
    },
    /// [`crate::Eal::cleanup`] already ran; DPDK cannot be used again in
    /// this process.
    CleanedUp,
    /// The resource is in use (a port already open, a queue already taken,
    /// pools or ports alive at cleanup).
    Busy(String),
    /// No port with that name or id.
    NoSuchPort(String),
    /// An argument DPDK or the port cannot take.
    InvalidArgument(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable { reason } => write!(f, "DPDK is not available in this build: {reason}"),
            Error::Dpdk { op, code, message } => write!(f, "{op} failed: {message} (errno {code})"),
            Error::NotInitialized => f.write_str("the DPDK EAL is not initialised (call Eal::init first)"),
            Error::AlreadyInitialized { args } => write!(
                f,
                "the DPDK EAL is already initialised with other arguments ({}); it can be initialised once per process",
                args.join(" ")
            ),
            Error::CleanedUp => f.write_str("the DPDK EAL was cleaned up; DPDK cannot be used again in this process"),
            Error::Busy(what) => write!(f, "busy: {what}"),
            Error::NoSuchPort(p) => write!(f, "no DPDK port {p:?} (see the EAL's --vdev / PCI allow list)"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
        }
    }
}

impl std::error::Error for Error {}
