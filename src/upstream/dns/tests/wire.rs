//! The wire format: the query's bytes, and answers read or refused.

use std::net::IpAddr;

use rand::{Rng, SeedableRng};

use super::super::wire::{read_name, WireError, RCODE_NXDOMAIN};
use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

#[test]
fn the_query_is_a_standard_recursive_query_for_one_name() {
    let q = Query {
        id: 0xbeef,
        name: Name::parse("Api.Zoom.us.").expect("name"),
        rtype: RecordType::Aaaa,
    };
    let mut want = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    want.extend(b"\x03api\x04zoom\x02us\x00");
    want.extend([0, 28, 0, 1]);
    assert_eq!(q.encode(), want);
    assert_eq!(q.name.to_string(), "api.zoom.us");
}

#[test]
fn names_that_are_not_dns_names_are_refused() {
    let long_label = "a".repeat(64);
    let long_name = vec!["abcdefghi"; 26].join(".");
    for bad in [
        "",
        ".",
        "a..b",
        "a b",
        "zoom.us/x",
        "zöom.us",
        &long_label,
        &long_name,
    ] {
        assert!(Name::parse(bad).is_err(), "{bad:?}");
    }
    let longest = vec!["a".repeat(63); 4].join(".");
    assert!(Name::parse(&longest[..253]).is_ok());
    assert!(Name::parse("_dns.x-y.example").is_ok());
}

#[test]
fn a_compressed_cname_chain_is_followed_to_its_addresses() {
    let q = query("api.zoom.us", RecordType::A);
    let asked = q.encode();
    // api.zoom.us CNAME edge.zoom.us (its `zoom.us` a pointer into the question),
    // edge.zoom.us CNAME a.cdn.example, then the A records of a.cdn.example
    // owned through pointers to the target written in the second CNAME.
    let edge_at = asked.len() + 12; // first record's rdata
    let mut edge = b"\x04edge".to_vec();
    edge.extend([0xc0, 12 + 4]); // -> "zoom.us" in the question
    let first = record(&TO_QUESTION, TYPE_CNAME, 300, &edge);
    let second_rdata_at = asked.len() + first.len() + 2 + 10;
    let second = record(
        &[0xc0, edge_at as u8],
        TYPE_CNAME,
        60,
        &name("a.cdn.example"),
    );
    let target = [0xc0, second_rdata_at as u8];
    let records = [
        first,
        second,
        record(&target, TYPE_A, 120, &[192, 0, 2, 1]),
        record(&target, TYPE_A, 30, &[192, 0, 2, 2]),
        // Not on the chain: ignored whatever it claims.
        record(&name("evil.example"), TYPE_A, 9, &[6, 6, 6, 6]),
        // The asked name's own A record beside its CNAME: not on the chain's end.
        record(&TO_QUESTION, TYPE_A, 9, &[6, 6, 6, 7]),
        // An AAAA on the chain's end answers another question.
        record(&target, TYPE_AAAA, 9, &[0; 16]),
    ];
    let answer = q
        .decode(&answer_to(&asked, ANSWER_FLAGS, &records))
        .expect("answer");
    assert_eq!(answer.addrs, vec![ip("192.0.2.1"), ip("192.0.2.2")]);
    assert_eq!(answer.ttl, 30);
    assert!(!answer.truncated);
}

#[test]
fn aaaa_answers_and_the_question_in_another_case_are_read() {
    let q = query("api.zoom.us", RecordType::Aaaa);
    let mut asked = q.encode();
    asked[13..16].copy_from_slice(b"APi");
    let six = ip("2001:db8::5");
    let IpAddr::V6(v6) = six else { panic!("v6") };
    let records = [record(&TO_QUESTION, TYPE_AAAA, 77, &v6.octets())];
    let answer = q
        .decode(&answer_to(&asked, ANSWER_FLAGS, &records))
        .expect("answer");
    assert_eq!((answer.addrs, answer.ttl), (vec![six], 77));
}

#[test]
fn answers_to_another_query_are_refused() {
    let q = query("api.zoom.us", RecordType::A);
    let asked = q.encode();
    let good = answer_to(&asked, ANSWER_FLAGS, &[]);
    assert!(q.decode(&good).is_ok());

    let mut wrong_id = good.clone();
    wrong_id[1] ^= 1;
    assert!(matches!(
        q.decode(&wrong_id),
        Err(WireError::WrongId { .. })
    ));

    let mut a_query = good.clone();
    a_query[2] &= 0x7f; // QR clear
    assert_eq!(q.decode(&a_query), Err(WireError::NotAnAnswer));

    let other_name = query("zoom.us", RecordType::A).encode();
    let other = answer_to(&other_name, ANSWER_FLAGS, &[]);
    assert_eq!(q.decode(&other), Err(WireError::WrongQuestion));

    let other_type = answer_to(
        &query("api.zoom.us", RecordType::Aaaa).encode(),
        ANSWER_FLAGS,
        &[],
    );
    assert_eq!(q.decode(&other_type), Err(WireError::WrongQuestion));

    let mut no_question = good;
    no_question[5] = 0;
    assert_eq!(q.decode(&no_question), Err(WireError::WrongQuestion));
}

#[test]
fn rcode_and_truncation_are_reported_without_reading_records() {
    let q = query("api.zoom.us", RecordType::A);
    let asked = q.encode();
    // Record counts that no record follows: not read when TC or an error is set.
    let mut nx = answer_to(&asked, ANSWER_FLAGS | u16::from(RCODE_NXDOMAIN), &[]);
    nx[7] = 5;
    assert_eq!(q.decode(&nx).expect("nx").rcode, RCODE_NXDOMAIN);
    let mut cut = answer_to(&asked, ANSWER_FLAGS | TC, &[]);
    cut[7] = 5;
    assert!(q.decode(&cut).expect("tc").truncated);
}

#[test]
fn every_truncation_of_an_answer_is_refused() {
    let q = query("api.zoom.us", RecordType::A);
    let asked = q.encode();
    let records = [
        record(&TO_QUESTION, TYPE_CNAME, 60, &name("b.example")),
        record(&name("b.example"), TYPE_A, 60, &[192, 0, 2, 9]),
    ];
    let whole = answer_to(&asked, ANSWER_FLAGS, &records);
    assert!(q.decode(&whole).is_ok());
    for len in 0..whole.len() {
        assert!(q.decode(&whole[..len]).is_err(), "accepted {len} bytes");
    }
}

#[test]
fn bad_records_are_refused() {
    let q = query("x.example", RecordType::A);
    let asked = q.encode();
    let short_a = [record(&TO_QUESTION, TYPE_A, 1, &[1, 2, 3, 4, 5])];
    assert_eq!(
        q.decode(&answer_to(&asked, ANSWER_FLAGS, &short_a)),
        Err(WireError::RecordLength("A"))
    );
    let long_cname = [record(&TO_QUESTION, TYPE_CNAME, 1, &[1, b'y', 0, 0xff])];
    assert_eq!(
        q.decode(&answer_to(&asked, ANSWER_FLAGS, &long_cname)),
        Err(WireError::RecordLength("CNAME"))
    );
    let looping = [
        record(&TO_QUESTION, TYPE_CNAME, 1, &name("y.example")),
        record(&name("y.example"), TYPE_CNAME, 1, &name("x.example")),
    ];
    assert_eq!(
        q.decode(&answer_to(&asked, ANSWER_FLAGS, &looping)),
        Err(WireError::CnameChain)
    );
}

#[test]
fn compression_pointers_are_followed_safely() {
    // To itself, and forwards.
    assert_eq!(read_name(&[0xc0, 0], 0), Err(WireError::BadPointer));
    assert_eq!(read_name(&[0xc0, 2, 0], 0), Err(WireError::BadPointer));
    // A pointer cut in half, a label past the end, reserved label types.
    assert_eq!(read_name(&[0xc0], 0), Err(WireError::Short("a name")));
    assert_eq!(read_name(&[3, b'a'], 0), Err(WireError::Short("a name")));
    assert_eq!(read_name(&[0x40], 0), Err(WireError::LabelType(0x40)));
    assert_eq!(read_name(&[0x80], 0), Err(WireError::LabelType(0x80)));
    // Each pointer to the one before it: backwards every time, but too many.
    let mut chain = vec![0u8];
    for i in 0..40u8 {
        let before = if i == 0 { 0 } else { 1 + 2 * (i - 1) };
        chain.extend([0xc0, before]);
    }
    let last = chain.len() - 2;
    assert_eq!(read_name(&chain, last), Err(WireError::TooManyPointers));
    assert!(read_name(&chain, 7).is_ok(), "a short chain is fine");
    // Labels of 63 bytes, each followed by a pointer to the one before: the
    // fourth makes a name of 257 bytes.
    let mut long = vec![63];
    long.extend([b'a'; 63]);
    long.push(0);
    let mut starts = vec![0usize];
    for _ in 0..3 {
        let prev = *starts.last().expect("a start");
        starts.push(long.len());
        long.push(63);
        long.extend([b'a'; 63]);
        long.extend([0xc0 | (prev >> 8) as u8, prev as u8]);
    }
    assert!(read_name(&long, starts[2]).is_ok(), "193 bytes");
    assert_eq!(read_name(&long, starts[3]), Err(WireError::NameTooLong));
    // Where the name ends in place: after the first pointer.
    let packet = [1, b'a', 0, 1, b'b', 0xc0, 0];
    let (n, end) = read_name(&packet, 3).expect("name");
    assert_eq!((n.to_string().as_str(), end), ("b.a", 7));
}

#[test]
fn random_damage_never_panics() {
    let q = query("api.zoom.us", RecordType::A);
    let asked = q.encode();
    let records = [
        record(&TO_QUESTION, TYPE_CNAME, 60, &name("b.example")),
        record(
            &[0xc0, (asked.len() + 12) as u8],
            TYPE_A,
            60,
            &[192, 0, 2, 9],
        ),
    ];
    let whole = answer_to(&asked, ANSWER_FLAGS, &records);
    assert!(q.decode(&whole).is_ok());
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    for _ in 0..20_000 {
        let mut damaged = whole.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..damaged.len());
            damaged[at] = rng.random();
        }
        let _ = q.decode(&damaged);
    }
    for _ in 0..2_000 {
        let noise: Vec<u8> = (0..rng.random_range(0..600))
            .map(|_| rng.random())
            .collect();
        let _ = q.decode(&noise);
    }
}
