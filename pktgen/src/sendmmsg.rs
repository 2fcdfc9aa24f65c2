//! Batched UDP send with `sendmmsg(2)`: one syscall per batch of datagrams
//! on a connected socket.
#![allow(unsafe_code)]

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// Sends every datagram in `batch` (up to 64) on connected socket `s`;
/// returns how many the kernel took.
pub fn send_batch(s: &UdpSocket, batch: &[&[u8]]) -> io::Result<usize> {
    const MAX: usize = 64;
    let n = batch.len().min(MAX);
    let mut iov: [libc::iovec; MAX] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX];
    // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid
    // (empty) value.
    let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    for (i, d) in batch.iter().take(n).enumerate() {
        iov[i] = libc::iovec { iov_base: d.as_ptr() as *mut libc::c_void, iov_len: d.len() };
        msgs[i].msg_hdr.msg_iov = &mut iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    let mut sent = 0usize;
    while sent < n {
        // SAFETY: msgs[sent..n] point at iovecs in `iov`, which point at the
        // caller's datagrams; all outlive this call, and the kernel only
        // reads them (and writes msg_len inside `msgs`).
        let r = unsafe { libc::sendmmsg(s.as_raw_fd(), msgs[sent..].as_mut_ptr(), (n - sent) as u32, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if sent > 0 {
                return Ok(sent);
            }
            return Err(e);
        }
        sent += r as usize;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_a_batch_on_loopback() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let data: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 10 + i as usize]).collect();
        let refs: Vec<&[u8]> = data.iter().map(|d| &d[..]).collect();
        assert_eq!(send_batch(&tx, &refs).unwrap(), 10);
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        for i in 0..10u8 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &data[i as usize][..]);
        }
    }
}
