//! Replies the control thread hands to a data core to transmit: on a
//! backend without a kernel socket (DPDK) only the core that owns a
//! transmit queue may send, so WELCOME, COOKIE, RECEIPT and ANSWER
//! datagrams travel to it as fixed-size [`Reply`] items on a bounded
//! single-producer single-consumer ring (the opposite direction of
//! [`crate::exception`]). The ring's slots are allocated once; pushing and
//! popping an item is a plain copy. A full ring refuses the item and the
//! control thread counts it.

use crate::peer::Peer;

/// Largest UDP payload a [`Reply`] carries: the IPv4 maximum on a
/// 1500-byte link (1500 - 20 - 8). Every reply the relay builds is
/// smaller (a RECEIPT frame stays under 1472 bytes).
pub const REPLY_MAX: usize = 1472;

/// One datagram to send: its UDP payload and the address it goes to.
#[derive(Clone, Copy)]
pub struct Reply {
    /// The destination: the source address of the datagram it answers.
    pub peer: Peer,
    len: u16,
    data: [u8; REPLY_MAX],
}

impl Reply {
    /// A reply carrying `datagram` to `peer`; `None` if it is longer than
    /// [`REPLY_MAX`].
    pub fn new(peer: Peer, datagram: &[u8]) -> Option<Reply> {
        let mut data = [0u8; REPLY_MAX];
        data.get_mut(..datagram.len())?.copy_from_slice(datagram);
        Some(Reply { peer, len: datagram.len() as u16, data })
    }

    /// The UDP payload.
    pub fn payload(&self) -> &[u8] {
        self.data.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl core::fmt::Debug for Reply {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reply").field("peer", &self.peer).field("len", &self.len).finish_non_exhaustive()
    }
}

/// Why a reply was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyRefused {
    /// The ring is full (the core is behind).
    RingFull,
    /// Longer than [`REPLY_MAX`], or to no address.
    Unsendable,
}

/// The control thread's end of a reply ring.
pub struct ReplyProducer {
    ring: rtrb::Producer<Reply>,
}

impl ReplyProducer {
    /// Queues `datagram` to `peer`.
    pub fn push(&mut self, peer: &Peer, datagram: &[u8]) -> Result<(), ReplyRefused> {
        if peer.is_none() {
            return Err(ReplyRefused::Unsendable);
        }
        if self.ring.is_full() {
            return Err(ReplyRefused::RingFull);
        }
        let r = Reply::new(*peer, datagram).ok_or(ReplyRefused::Unsendable)?;
        self.ring.push(r).map_err(|_| ReplyRefused::RingFull)
    }

    /// Items queued and not yet taken by the core.
    pub fn queued(&self) -> usize {
        self.ring.buffer().capacity() - self.ring.slots()
    }
}

impl core::fmt::Debug for ReplyProducer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplyProducer").field("queued", &self.queued()).finish()
    }
}

/// The data core's end of a reply ring.
pub struct ReplyConsumer {
    ring: rtrb::Consumer<Reply>,
}

impl ReplyConsumer {
    /// The oldest queued reply.
    #[inline]
    pub fn pop(&mut self) -> Option<Reply> {
        self.ring.pop().ok()
    }

    /// Replies waiting.
    #[inline]
    pub fn waiting(&self) -> usize {
        self.ring.slots()
    }
}

impl core::fmt::Debug for ReplyConsumer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplyConsumer").field("waiting", &self.waiting()).finish()
    }
}

/// A reply ring `depth` items deep (about 1.5 KB each).
pub fn reply_link(depth: usize) -> (ReplyProducer, ReplyConsumer) {
    let (p, c) = rtrb::RingBuffer::new(depth.max(1));
    (ReplyProducer { ring: p }, ReplyConsumer { ring: c })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_queue_in_order_and_refusals_are_named() {
        let (mut p, mut c) = reply_link(2);
        let to = Peer::v4([10, 0, 0, 2], 40000);
        assert_eq!(p.push(&to, b"welcome"), Ok(()));
        assert_eq!(p.push(&to, &[7; REPLY_MAX]), Ok(()));
        assert_eq!(p.queued(), 2);
        assert_eq!(p.push(&to, b"x"), Err(ReplyRefused::RingFull));
        let a = c.pop().unwrap();
        assert_eq!((a.peer, a.payload()), (to, &b"welcome"[..]));
        assert_eq!(c.pop().unwrap().payload(), &[7; REPLY_MAX][..]);
        assert!(c.pop().is_none());
        assert_eq!(p.push(&to, &[0; REPLY_MAX + 1]), Err(ReplyRefused::Unsendable));
        assert_eq!(p.push(&Peer::NONE, b"x"), Err(ReplyRefused::Unsendable));
        assert_eq!(p.queued(), 0);
    }
}
