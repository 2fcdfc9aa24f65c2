//! `receive`: the io_uring backend against recvmmsg, draining the same
//! number of prefilled datagrams from a loopback socket, interleaved.

use std::cell::RefCell;
use std::time::Duration;

use super::Ctx;
use crate::measure::{interleave, Figure};
use crate::report::{Row, Section};
use dataplane::backend::probe::{targets, Sender, PAYLOAD, PREFILL};

/// io_uring should drain at least as fast as recvmmsg.
pub const GOAL: f64 = 1.0;

pub fn section(ctx: &Ctx) -> Section {
    match rows(ctx) {
        Ok(rows) => Section::measured(
            "receive",
            format!(
                "Draining {PREFILL} prefilled {PAYLOAD}-byte datagrams from a loopback socket (the send is untimed): \
                 the io_uring backend (multishot receive into a provided-buffer ring; plain, and in the \
                 address mode the node uses when it sends receipts) against recvmmsg, the backends of \
                 `attnet node`, in M datagrams/s."
            ),
            rows,
        ),
        Err(e) => Section::skipped("receive", e),
    }
}

fn rows(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let sender = Sender::new()?;
    let mut ts = targets()?;
    let failure: RefCell<Option<String>> = RefCell::new(None);
    let t = {
        let mut figs: Vec<Figure<'_>> = ts
            .iter_mut()
            .map(|t| {
                let (sender, failure) = (&sender, &failure);
                Box::new(move || match sender.prefill_and_drain(t) {
                    Ok(d) => d,
                    Err(e) => {
                        failure.borrow_mut().get_or_insert(e);
                        Duration::ZERO
                    }
                }) as Figure<'_>
            })
            .collect();
        interleave(ctx.budget, &mut figs)
    };
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    let rate = |s: f64| PREFILL as f64 / s / 1e6;
    Ok(vec![
        Row::vs("io_uring", rate(t[0]), "M datagrams/s", "recvmmsg", rate(t[1])).goal(GOAL),
        Row::plain("recvmmsg", rate(t[1]), "M datagrams/s", true),
        // With receipts on, the node reads source addresses: a cost per
        // datagram that the frame path (microseconds a transaction, for
        // the signature) hides; the goal is the plain receive's.
        Row::vs("io_uring with source addresses (receipts on)", rate(t[2]), "M datagrams/s", "recvmmsg", rate(t[1])),
        Row::vs("io_uring with source addresses vs plain", rate(t[2]), "M datagrams/s", "io_uring plain", rate(t[0])),
    ])
}
