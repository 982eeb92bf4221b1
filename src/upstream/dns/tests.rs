//! Unit tests for the DNS stub: the wire format on hand-made packets, and the
//! resolver against small DNS servers on loopback sockets.

use super::wire::{Name, Query, RecordType};

mod resolver;
mod wire;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
/// QR, RD, RA: a recursive server's answer, RCODE 0.
const ANSWER_FLAGS: u16 = 0x8180;
const TC: u16 = 0x0200;
/// A compression pointer to offset 12: the question's name.
const TO_QUESTION: [u8; 2] = [0xc0, 12];

fn query(name: &str, rtype: RecordType) -> Query {
    Query {
        id: 0x5a5a,
        name: Name::parse(name).expect("name"),
        rtype,
    }
}

/// `name` in wire form, uncompressed.
fn name(text: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in text.split('.').filter(|l| !l.is_empty()) {
        wire.push(label.len() as u8);
        wire.extend(label.as_bytes());
    }
    wire.push(0);
    wire
}

fn record(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = owner.to_vec();
    r.extend(rtype.to_be_bytes());
    r.extend(1u16.to_be_bytes());
    r.extend(ttl.to_be_bytes());
    r.extend((rdata.len() as u16).to_be_bytes());
    r.extend(rdata);
    r
}

/// An answer to the query packet `asked` (its header and question echoed),
/// with `flags` and `records` in the answer section.
fn answer_to(asked: &[u8], flags: u16, records: &[Vec<u8>]) -> Vec<u8> {
    let mut p = asked[..2].to_vec();
    p.extend(flags.to_be_bytes());
    p.extend(1u16.to_be_bytes());
    p.extend((records.len() as u16).to_be_bytes());
    p.extend([0, 0, 0, 0]);
    p.extend(&asked[12..]);
    for r in records {
        p.extend(r);
    }
    p
}

/// The question's name and type in a query packet.
fn asked(packet: &[u8]) -> (String, u16) {
    let mut pos = 12;
    let mut labels = Vec::new();
    while let Some(&len) = packet.get(pos).filter(|l| **l != 0) {
        let label = &packet[pos + 1..pos + 1 + usize::from(len)];
        labels.push(String::from_utf8_lossy(label).into_owned());
        pos += 1 + usize::from(len);
    }
    let qtype = u16::from_be_bytes([packet[pos + 1], packet[pos + 2]]);
    (labels.join("."), qtype)
}
