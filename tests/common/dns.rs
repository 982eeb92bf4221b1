//! A fake DNS server on 127.0.0.1 (UDP, a port the kernel picks): it answers an
//! A query for any name with one address and an AAAA query with no record, and
//! records every question it was asked.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_AAAA: u16 = 28;

pub(crate) struct FakeDns {
    pub(crate) addr: SocketAddr,
    asked: Arc<Mutex<Vec<(String, u16)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeDns {
    /// Answers every name with `v4`.
    pub(crate) async fn start(v4: Ipv4Addr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().expect("dns addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let Some((name, qtype, end)) = question(&buf[..len]) else {
                    continue;
                };
                log.lock().expect("log").push((name, qtype));
                let answer = answer(&buf[..end], qtype, v4);
                let _ = socket.send_to(&answer, from).await;
            }
        });
        Self { addr, asked, task }
    }

    /// Every (name, type) asked so far.
    pub(crate) fn asked(&self) -> Vec<(String, u16)> {
        self.asked.lock().expect("log").clone()
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The question's name, type and where it ends.
fn question(packet: &[u8]) -> Option<(String, u16, usize)> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(pos)?);
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(packet.get(pos + 1..pos + 1 + len)?).into_owned());
        pos += 1 + len;
    }
    let qtype = u16::from_be_bytes([*packet.get(pos + 1)?, *packet.get(pos + 2)?]);
    Some((labels.join("."), qtype, pos + 5))
}

/// The query's header and question echoed, QR RD RA set; one A record (TTL 5 s)
/// pointing back at the question's name for an A query.
fn answer(query: &[u8], qtype: u16, v4: Ipv4Addr) -> Vec<u8> {
    let mut a = query[..2].to_vec();
    a.extend([0x81, 0x80, 0, 1, 0, u8::from(qtype == TYPE_A), 0, 0, 0, 0]);
    a.extend(&query[12..]);
    if qtype == TYPE_A {
        a.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
        a.extend(v4.octets());
    }
    a
}
