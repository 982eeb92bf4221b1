//! The resolver against small DNS servers on loopback: what it asks, what it
//! takes, and where it goes next.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::super::{DnsError, DnsResolver, ServerError};
use super::*;

const SHORT: Duration = Duration::from_millis(200);

/// What a fake server was asked: name and type, in order.
type Asked = Arc<Mutex<Vec<(String, u16)>>>;

/// A UDP DNS server on 127.0.0.1 sending back whatever `reply` makes of each query.
async fn udp_server(reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> (SocketAddr, Asked) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    udp_server_on(socket, reply)
}

fn udp_server_on(
    socket: UdpSocket,
    reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, Asked) {
    let addr = socket.local_addr().expect("addr");
    let asked = Asked::default();
    let log = asked.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            log.lock().expect("log").push(super::asked(&buf[..len]));
            for datagram in reply(&buf[..len]) {
                let _ = socket.send_to(&datagram, from).await;
            }
        }
    });
    (addr, asked)
}

/// A and AAAA records for the asked name, or none of a type given no address.
fn answers(v4: Option<[u8; 4]>, v6: Option<[u8; 16]>) -> impl Fn(&[u8]) -> Vec<Vec<u8>> {
    move |q| {
        let records = match super::asked(q).1 {
            TYPE_A => v4.map(|a| record(&TO_QUESTION, TYPE_A, 60, &a)),
            _ => v6.map(|a| record(&TO_QUESTION, TYPE_AAAA, 60, &a)),
        };
        vec![answer_to(
            q,
            ANSWER_FLAGS,
            &records.into_iter().collect::<Vec<_>>(),
        )]
    }
}

fn count(asked: &Asked) -> usize {
    asked.lock().expect("log").len()
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

const SIX: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

#[tokio::test]
async fn a_and_aaaa_are_asked_once_and_the_answer_cached() {
    let (server, asked) = udp_server(answers(Some([192, 0, 2, 1]), Some(SIX))).await;
    let dns = DnsResolver::new(vec![server]);
    let addrs = dns.lookup("api.zoom.us").await.expect("addresses");
    assert_eq!(addrs, vec![ip("192.0.2.1"), ip("2001:db8::1")]);
    let mut seen = asked.lock().expect("log").clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("api.zoom.us".to_owned(), TYPE_A),
            ("api.zoom.us".to_owned(), TYPE_AAAA)
        ]
    );
    // Within the TTL, in any case, with or without the root's dot: no new query.
    assert_eq!(
        dns.clone().lookup("API.zoom.us.").await.expect("cached"),
        addrs
    );
    assert_eq!(count(&asked), 2);
}

#[tokio::test]
async fn packets_that_are_not_the_answer_are_dropped_and_the_answer_taken() {
    let (server, _) = udp_server(|q| {
        let good = answers(Some([192, 0, 2, 7]), None)(q).remove(0);
        let mut spoofed = answers(Some([6, 6, 6, 6]), None)(q).remove(0);
        spoofed[1] ^= 0x01;
        let other = answer_to(
            &query("evil.example", RecordType::A).encode(),
            ANSWER_FLAGS,
            &[],
        );
        vec![spoofed, b"\xff\xfe garbage".to_vec(), other, good]
    })
    .await;
    let dns = DnsResolver::new(vec![server]);
    let addrs = dns.lookup("api.zoom.us").await.expect("addresses");
    assert_eq!(addrs, vec![ip("192.0.2.7")]);
}

#[tokio::test]
async fn a_silent_server_is_passed_over_for_the_next() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let (good, _) = udp_server(answers(Some([192, 0, 2, 3]), None)).await;
    let dns = DnsResolver::with_timeout(vec![silent_addr, good], SHORT);
    assert_eq!(
        dns.lookup("api.zoom.us").await.expect("addresses"),
        vec![ip("192.0.2.3")]
    );
    // Alone, it is tried each round, and the error says what happened.
    let dns = DnsResolver::with_timeout(vec![silent_addr], SHORT);
    let err = dns.lookup("api.zoom.us").await.expect_err("no answer");
    match &err {
        DnsError::Unanswered { tries, last, .. } => {
            assert_eq!(*tries, super::super::ROUNDS);
            assert!(matches!(last, ServerError::Timeout { .. }), "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("no answer within"), "{err}");
    drop(silent);
}

#[tokio::test]
async fn servfail_moves_to_the_next_server_and_nxdomain_is_final() {
    let (failing, _) = udp_server(|q| vec![answer_to(q, ANSWER_FLAGS | 2, &[])]).await;
    let (good, _) = udp_server(answers(Some([192, 0, 2, 4]), None)).await;
    let dns = DnsResolver::new(vec![failing, good]);
    assert_eq!(
        dns.lookup("api.zoom.us").await.expect("addresses"),
        vec![ip("192.0.2.4")]
    );

    let (nx, _) = udp_server(|q| vec![answer_to(q, ANSWER_FLAGS | 3, &[])]).await;
    let (never, never_asked) = udp_server(answers(Some([192, 0, 2, 5]), None)).await;
    let dns = DnsResolver::new(vec![nx, never]);
    let err = dns.lookup("api.zoom.us").await.expect_err("no such name");
    assert!(matches!(err, DnsError::NotFound { .. }), "{err}");
    assert_eq!(
        count(&never_asked),
        0,
        "NXDOMAIN is not asked again elsewhere"
    );
}

#[tokio::test]
async fn a_truncated_answer_is_asked_again_over_tcp() {
    // One port for both: TCP first, then UDP on the port it got.
    let (tcp, udp) = loop {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)).await {
            break (tcp, udp);
        }
    };
    let (server, over_udp) = udp_server_on(udp, |q| vec![answer_to(q, ANSWER_FLAGS | TC, &[])]);
    let over_tcp = Asked::default();
    let log = over_tcp.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await.expect("length");
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut q).await.expect("query");
            log.lock().expect("log").push(super::asked(&q));
            let a = answers(Some([192, 0, 2, 6]), Some(SIX))(&q).remove(0);
            let mut framed = (a.len() as u16).to_be_bytes().to_vec();
            framed.extend(a);
            stream.write_all(&framed).await.expect("answer");
        }
    });
    let dns = DnsResolver::new(vec![server]);
    let addrs = dns.lookup("api.zoom.us").await.expect("addresses");
    assert_eq!(addrs, vec![ip("192.0.2.6"), ip("2001:db8::1")]);
    assert_eq!((count(&over_udp), count(&over_tcp)), (2, 2));
}

#[tokio::test]
async fn one_family_is_enough_and_none_is_an_error() {
    let (v4_only, _) = udp_server(|q| match super::asked(q).1 {
        TYPE_A => answers(Some([192, 0, 2, 8]), None)(q),
        _ => vec![answer_to(q, ANSWER_FLAGS | 2, &[])],
    })
    .await;
    let dns = DnsResolver::new(vec![v4_only]);
    assert_eq!(
        dns.lookup("api.zoom.us").await.expect("addresses"),
        vec![ip("192.0.2.8")]
    );
    let (empty, _) = udp_server(answers(None, None)).await;
    let err = DnsResolver::new(vec![empty])
        .lookup("api.zoom.us")
        .await
        .expect_err("no address");
    assert!(matches!(err, DnsError::NoAddress { .. }), "{err}");
}

#[tokio::test]
async fn ip_literals_ask_no_one_and_bad_names_are_refused() {
    let dns = DnsResolver::new(Vec::new());
    assert_eq!(
        dns.lookup("192.0.2.1").await.expect("v4"),
        vec![ip("192.0.2.1")]
    );
    assert_eq!(
        dns.lookup("[2001:db8::1]").await.expect("v6"),
        vec![ip("2001:db8::1")]
    );
    let err = dns.lookup("not a name").await.expect_err("bad");
    assert!(matches!(err, DnsError::BadName(_)), "{err}");
    let err = dns.lookup("api.zoom.us").await.expect_err("no server");
    assert!(matches!(err, DnsError::NoServers { .. }), "{err}");
}
