//! Outgoing datagrams in batches: while the worker handles one input (a datagram, a command, a
//! tick) it queues what str0m transmits, and sends the queue with one `sendmmsg(2)` when the
//! handler ends or the queue is full — one system call per batch instead of one per forwarded
//! packet. The buffers are allocated once per worker.

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// The largest datagram a slot holds; str0m stays far below (anything bigger goes out alone).
const SLOT: usize = 1500;

pub struct SendBatch {
    buf: Box<[u8]>,
    lens: [usize; BATCH],
    addrs: Vec<Option<SockaddrStorage>>,
    headers: MultiHeaders<SockaddrStorage>,
    /// Datagrams and bytes queued since the counters were last taken.
    pub packets: u64,
    pub bytes: u64,
    /// ICE-TCP packets dropped because their connection's queue was full.
    pub tcp_dropped: u64,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            buf: vec![0; BATCH * SLOT].into_boxed_slice(),
            lens: [0; BATCH],
            addrs: Vec::with_capacity(BATCH),
            headers: MultiHeaders::preallocate(BATCH, None),
            packets: 0,
            bytes: 0,
            tcp_dropped: 0,
        }
    }
}

impl SendBatch {
    /// Datagrams waiting to be sent.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Queues one datagram (sending the queue first when it is full).
    pub fn push(&mut self, socket: &UdpSocket, to: SocketAddr, data: &[u8]) {
        self.packets += 1;
        self.bytes += data.len() as u64;
        if data.len() > SLOT {
            // Errors lose one datagram, as a network would; RTP copes.
            let _ = socket.send_to(data, to);
            return;
        }
        if self.addrs.len() == BATCH {
            self.flush(socket);
        }
        let i = self.addrs.len();
        self.buf[i * SLOT..i * SLOT + data.len()].copy_from_slice(data);
        self.lens[i] = data.len();
        self.addrs.push(Some(SockaddrStorage::from(to)));
    }

    /// Sends everything queued.
    pub fn flush(&mut self, socket: &UdpSocket) {
        let n = self.addrs.len();
        if n == 0 {
            return;
        }
        let (buf, lens) = (&self.buf, &self.lens);
        let slices: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|i| [IoSlice::new(&buf[i * SLOT..i * SLOT + lens[i].min(SLOT)])]);
        let none: [ControlMessage<'_>; 0] = [];
        let mut start = 0;
        while start < n {
            let result = sendmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                &slices[start..n],
                &self.addrs[start..n],
                none,
                MsgFlags::empty(),
            );
            start += match result {
                // A short count means an error after the first datagram, reported on the next call; nix
                // tells the count only through an iterator that reads receive-side addresses, so the rest
                // of this batch counts as sent: those datagrams are lost, as with a failing send_to.
                Ok(_) => n - start,
                // The first datagram failed (an ICMP error left by an earlier send): it is lost, as with
                // send_to, and the rest still go.
                Err(_) => 1,
            };
        }
        self.addrs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receiver() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        s
    }

    fn datagram(i: usize) -> Vec<u8> {
        (0..(20 + i * 37 % 1200)).map(|b| (b + i) as u8).collect()
    }

    #[test]
    fn every_queued_datagram_arrives_intact_across_several_batches() {
        let rx = receiver();
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = rx.local_addr().expect("addr");
        let mut batch = SendBatch::default();
        let total = BATCH * 2 + 5;
        for i in 0..total {
            batch.push(&tx, to, &datagram(i));
        }
        assert_eq!(batch.len(), 5, "full batches go out as they fill");
        batch.flush(&tx);
        assert!(batch.is_empty());
        let mut buf = [0u8; 2048];
        for i in 0..total {
            let (n, from) = rx.recv_from(&mut buf).expect("datagram");
            assert_eq!(from, tx.local_addr().expect("addr"));
            assert_eq!(&buf[..n], &datagram(i)[..], "datagram {i}");
        }
        assert_eq!(batch.packets, total as u64);
    }

    #[test]
    fn a_failing_destination_does_not_stop_the_rest_of_the_batch() {
        let rx = receiver();
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        // A port nobody listens on: the kernel answers with ICMP unreachable, which fails a later send.
        let closed = UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let mut batch = SendBatch::default();
        batch.push(&tx, closed, b"to nobody");
        batch.flush(&tx);
        std::thread::sleep(Duration::from_millis(20));
        batch.push(&tx, closed, b"to nobody again");
        batch.push(&tx, rx.local_addr().expect("addr"), b"one");
        batch.push(&tx, rx.local_addr().expect("addr"), b"two");
        batch.flush(&tx);
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        for _ in 0..2 {
            let (n, _) = rx.recv_from(&mut buf).expect("datagram");
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn an_oversized_datagram_goes_out_alone() {
        let rx = receiver();
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let big = vec![7u8; SLOT + 100];
        let mut batch = SendBatch::default();
        batch.push(&tx, rx.local_addr().expect("addr"), &big);
        assert!(batch.is_empty());
        let mut buf = [0u8; 4096];
        let (n, _) = rx.recv_from(&mut buf).expect("datagram");
        assert_eq!(&buf[..n], &big[..]);
    }
}
