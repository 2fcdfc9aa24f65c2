//! Frames a data core accepts but cannot finish itself: HELLOs (with the
//! cookie echoed before them) and QUERYs. The core copies each into a
//! fixed-size [`Exception`] on a bounded single-producer single-consumer
//! ring to the control thread, which does the signature, key and ledger
//! work and answers. Nothing here allocates per frame: the rings' slots
//! are allocated once, and an item is a plain copy. A full ring refuses the
//! item and the core counts it as `overload` (handshake or query).

use crate::peer::Peer;

/// Bytes of a frame's body an [`Exception`] carries: a HELLO body (153
/// bytes) and any QUERY body served (38 bytes; the project's paged
/// inbox and connections queries, 46) fit.
pub const EXCEPTION_BODY: usize = 160;

/// What an [`Exception`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionKind {
    /// A HELLO body, with the cookie of the COOKIE_ECHO that preceded it in
    /// its datagram, if one did ([`Exception::cookie`]).
    Hello,
    /// A COOKIE_ECHO that no HELLO followed, or whose body is not a
    /// COOKIE_ECHO body (with the HELLO after it, one item): the handshake
    /// counts it as `malformed`.
    Malformed,
    /// A QUERY body, from an authenticated session.
    Query,
}

/// One item on an exception ring.
#[derive(Debug, Clone, Copy)]
pub struct Exception {
    /// What it is.
    pub kind: ExceptionKind,
    /// The frame's MCS initiator (0 for a HELLO; the session of a QUERY).
    pub session: u16,
    /// The generation of that session on the core (queries only).
    pub generation: u32,
    /// The frame's MCS channel.
    pub channel: u16,
    /// The datagram's source address ([`Peer::NONE`] when the backend reads
    /// none).
    pub peer: Peer,
    /// The cookie echoed before a HELLO.
    pub cookie: Option<[u8; 16]>,
    /// The body's real length; above [`EXCEPTION_BODY`] only its first
    /// bytes are kept and [`Exception::body`] is `None`.
    pub len: u16,
    body: [u8; EXCEPTION_BODY],
    /// When its burst was received (ns since the node's epoch).
    pub rx_ns: u64,
}

impl Exception {
    /// An item of `kind` holding `body` (cut at [`EXCEPTION_BODY`] bytes).
    pub fn new(kind: ExceptionKind, session: u16, channel: u16, peer: Peer, body: &[u8]) -> Exception {
        let mut b = [0u8; EXCEPTION_BODY];
        let n = body.len().min(EXCEPTION_BODY);
        if let (Some(d), Some(s)) = (b.get_mut(..n), body.get(..n)) {
            d.copy_from_slice(s);
        }
        Exception {
            kind,
            session,
            generation: 0,
            channel,
            peer,
            cookie: None,
            len: body.len().min(usize::from(u16::MAX)) as u16,
            body: b,
            rx_ns: 0,
        }
    }

    /// The whole body, or `None` if it was longer than [`EXCEPTION_BODY`]
    /// (no valid HELLO or QUERY is).
    pub fn body(&self) -> Option<&[u8]> {
        self.body.get(..usize::from(self.len))
    }
}

/// A data core's end: one ring for handshakes, one for queries, so a HELLO
/// flood never starves queries and the reverse.
pub struct ExceptionLink {
    /// HELLO items.
    pub hellos: rtrb::Producer<Exception>,
    /// QUERY items.
    pub queries: rtrb::Producer<Exception>,
}

/// The control thread's end of one core's [`ExceptionLink`].
pub struct ExceptionEnd {
    /// HELLO items.
    pub hellos: rtrb::Consumer<Exception>,
    /// QUERY items.
    pub queries: rtrb::Consumer<Exception>,
}

impl core::fmt::Debug for ExceptionLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExceptionLink").field("hello_slots", &self.hellos.slots()).finish_non_exhaustive()
    }
}

impl core::fmt::Debug for ExceptionEnd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExceptionEnd").field("hellos", &self.hellos.slots()).finish_non_exhaustive()
    }
}

/// One core's exception rings, `hellos` and `queries` items deep.
pub fn exception_link(hellos: usize, queries: usize) -> (ExceptionLink, ExceptionEnd) {
    let (hp, hc) = rtrb::RingBuffer::new(hellos.max(1));
    let (qp, qc) = rtrb::RingBuffer::new(queries.max(1));
    (ExceptionLink { hellos: hp, queries: qp }, ExceptionEnd { hellos: hc, queries: qc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_kept_whole_or_flagged() {
        let e = Exception::new(ExceptionKind::Hello, 0, 1003, Peer::NONE, &[7; 153]);
        assert_eq!(e.body(), Some(&[7u8; 153][..]));
        let long = Exception::new(ExceptionKind::Hello, 0, 1003, Peer::NONE, &[7; 400]);
        assert_eq!((long.len, long.body()), (400, None));
        let (mut link, mut end) = exception_link(1, 1);
        assert!(link.hellos.push(e).is_ok());
        assert!(link.hellos.push(e).is_err(), "a full ring refuses");
        assert_eq!(end.hellos.pop().map(|x| x.len).ok(), Some(153));
        assert!(end.queries.pop().is_err());
    }
}
