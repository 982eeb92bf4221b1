//! DNS messages (RFC 1035 §4): the one kind of query grantmux sends, and the
//! parts of an answer it reads.
//!
//! A packet comes from the network, so every read is bounds-checked and every
//! loop is bounded: compression pointers must point backwards (so a chain of
//! them always ends) and are followed at most [`MAX_POINTER_HOPS`] times, a name
//! is at most 255 bytes, and a CNAME chain at most [`MAX_CNAME_HOPS`] links.
//! Nothing here panics on any input; a bad packet is a [`WireError`].
//!
//! Only the question and answer sections are read. Records whose owner is not
//! on the chain from the asked name are ignored, whatever they claim.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const HEADER_LEN: usize = 12;
/// A name's wire form, length bytes included (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;
/// More pointers than any sane packet holds for one name (its labels are at most 127).
const MAX_POINTER_HOPS: usize = 32;
/// CNAME links followed from the asked name; resolvers stop at about this many too.
const MAX_CNAME_HOPS: usize = 8;

const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000f;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// RCODE 0: the answer section is the answer.
pub(crate) const RCODE_NOERROR: u8 = 0;
/// RCODE 3: the name does not exist.
pub(crate) const RCODE_NXDOMAIN: u8 = 3;

/// The address records asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordType {
    A,
    Aaaa,
}

/// A name in wire form without compression, labels lowercased: compared byte
/// for byte, so a `.` inside a label can never pass for a label boundary.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Name(Vec<u8>);

/// One question: the id it went out with, the name and the record type.
#[derive(Debug)]
pub(crate) struct Query {
    pub(crate) id: u16,
    pub(crate) name: Name,
    pub(crate) rtype: RecordType,
}

/// What an answer to a [`Query`] says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) rcode: u8,
    /// TC: the server cut the answer to fit a datagram; nothing else was read.
    pub(crate) truncated: bool,
    /// The addresses at the end of the CNAME chain, in the order given.
    pub(crate) addrs: Vec<IpAddr>,
    /// The smallest TTL on the chain and its addresses, in seconds.
    pub(crate) ttl: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum WireError {
    #[error("\"{0}\" is not a DNS name")]
    BadName(String),
    #[error("the packet ends inside {0}")]
    Short(&'static str),
    #[error("not an answer to a standard query")]
    NotAnAnswer,
    #[error("answer id {got} is not the query's {sent}")]
    WrongId { sent: u16, got: u16 },
    #[error("the answer's question is not the one asked")]
    WrongQuestion,
    #[error("a compression pointer does not point backwards")]
    BadPointer,
    #[error("more than {MAX_POINTER_HOPS} compression pointers in one name")]
    TooManyPointers,
    #[error("a name longer than {MAX_NAME_LEN} bytes")]
    NameTooLong,
    #[error("a label of unknown type {0:#04x}")]
    LabelType(u8),
    #[error("an {0} record of the wrong length")]
    RecordLength(&'static str),
    #[error("a CNAME chain longer than {MAX_CNAME_HOPS} links")]
    CnameChain,
}

/// A resource record of the answer section, as far as it is read.
struct Record {
    owner: Name,
    ttl: u32,
    data: RecordData,
}

enum RecordData {
    Addr(IpAddr),
    Cname(Name),
    Other,
}

// === impl RecordType ===

impl RecordType {
    fn code(self) -> u16 {
        match self {
            RecordType::A => TYPE_A,
            RecordType::Aaaa => TYPE_AAAA,
        }
    }
}

// === impl Name ===

impl Name {
    /// `api.zoom.us` or `api.zoom.us.`: letters, digits, `-` and `_`, each label
    /// 1 to 63 bytes. Names are absolute: no search list is applied.
    pub(crate) fn parse(text: &str) -> Result<Self, WireError> {
        let bad = || WireError::BadName(text.to_owned());
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        if trimmed.is_empty() {
            return Err(bad());
        }
        let mut wire = Vec::with_capacity(trimmed.len() + 2);
        for label in trimmed.split('.') {
            let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            if label.is_empty() || label.len() > MAX_LABEL_LEN || !label.bytes().all(ok) {
                return Err(bad());
            }
            wire.push(label.len() as u8);
            wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
        wire.push(0);
        if wire.len() > MAX_NAME_LEN {
            return Err(bad());
        }
        Ok(Name(wire))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0.as_slice();
        let mut first = true;
        while let Some((&len, tail)) = rest.split_first() {
            let Some(label) = tail.get(..usize::from(len)).filter(|l| !l.is_empty()) else {
                break;
            };
            if !first {
                f.write_str(".")?;
            }
            first = false;
            // Read from a packet, a label may hold any byte: shown escaped.
            for &b in label {
                write!(f, "{}", std::ascii::escape_default(b))?;
            }
            rest = &tail[label.len()..];
        }
        if first {
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

// === impl Query ===

impl Query {
    /// The query's packet: a standard query with recursion desired, one question, class IN.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut packet = Vec::with_capacity(HEADER_LEN + self.name.0.len() + 4);
        packet.extend(self.id.to_be_bytes());
        packet.extend(FLAG_RD.to_be_bytes());
        packet.extend([0, 1, 0, 0, 0, 0, 0, 0]); // QD 1, AN 0, NS 0, AR 0
        packet.extend(&self.name.0);
        packet.extend(self.rtype.code().to_be_bytes());
        packet.extend(CLASS_IN.to_be_bytes());
        packet
    }

    /// Reads `packet` as the answer to this query: the same id, a response to a
    /// standard query, and this query's question echoed back.
    pub(crate) fn decode(&self, packet: &[u8]) -> Result<Answer, WireError> {
        let mut r = Reader { packet, pos: 0 };
        let id = r.u16("the header")?;
        if id != self.id {
            return Err(WireError::WrongId {
                sent: self.id,
                got: id,
            });
        }
        let flags = r.u16("the header")?;
        if flags & FLAG_QR == 0 || flags & OPCODE_MASK != 0 {
            return Err(WireError::NotAnAnswer);
        }
        let qdcount = r.u16("the header")?;
        let ancount = r.u16("the header")?;
        r.skip(4, "the header")?; // NS and AR counts: those sections are not read.
        if qdcount != 1 {
            return Err(WireError::WrongQuestion);
        }
        let qname = r.name()?;
        let (qtype, qclass) = (r.u16("the question")?, r.u16("the question")?);
        if qname != self.name || qtype != self.rtype.code() || qclass != CLASS_IN {
            return Err(WireError::WrongQuestion);
        }
        let rcode = (flags & RCODE_MASK) as u8;
        let truncated = flags & FLAG_TC != 0;
        let mut answer = Answer {
            rcode,
            truncated,
            addrs: Vec::new(),
            ttl: u32::MAX,
        };
        if truncated || rcode != RCODE_NOERROR {
            return Ok(answer);
        }
        let records = (0..ancount)
            .map(|_| r.record())
            .collect::<Result<Vec<_>, _>>()?;
        self.follow(&records, &mut answer)?;
        Ok(answer)
    }

    /// From the asked name along CNAMEs to the addresses of the type asked for.
    fn follow(&self, records: &[Record], answer: &mut Answer) -> Result<(), WireError> {
        let mut current = &self.name;
        for _ in 0..=MAX_CNAME_HOPS {
            let alias = records.iter().find_map(|rec| match &rec.data {
                RecordData::Cname(target) if rec.owner == *current => Some((target, rec.ttl)),
                _ => None,
            });
            let Some((target, ttl)) = alias else {
                for rec in records.iter().filter(|rec| rec.owner == *current) {
                    if let RecordData::Addr(ip) = rec.data {
                        let wanted = match ip {
                            IpAddr::V4(_) => RecordType::A,
                            IpAddr::V6(_) => RecordType::Aaaa,
                        };
                        if wanted == self.rtype {
                            answer.addrs.push(ip);
                            answer.ttl = answer.ttl.min(rec.ttl);
                        }
                    }
                }
                return Ok(());
            };
            answer.ttl = answer.ttl.min(ttl);
            current = target;
        }
        Err(WireError::CnameChain)
    }
}

/// A cursor over a packet; every read checks its bounds.
struct Reader<'a> {
    packet: &'a [u8],
    pos: usize,
}

// === impl Reader ===

impl Reader<'_> {
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&[u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Short(what))?;
        let slice = self
            .packet
            .get(self.pos..end)
            .ok_or(WireError::Short(what))?;
        self.pos = end;
        Ok(slice)
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), WireError> {
        self.bytes(n, what).map(|_| ())
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name at the cursor, pointers followed; the cursor moves past its first
    /// part (up to and including the first pointer, or the root label).
    fn name(&mut self) -> Result<Name, WireError> {
        let (name, end) = read_name(self.packet, self.pos)?;
        self.pos = end;
        Ok(name)
    }

    fn record(&mut self) -> Result<Record, WireError> {
        let owner = self.name()?;
        let rtype = self.u16("a record")?;
        let class = self.u16("a record")?;
        let ttl = self.u32("a record")?;
        let len = usize::from(self.u16("a record")?);
        let start = self.pos;
        let rdata = self.bytes(len, "a record's data")?;
        let data = match (class, rtype) {
            (CLASS_IN, TYPE_A) => {
                let octets: [u8; 4] = rdata.try_into().map_err(|_| WireError::RecordLength("A"))?;
                RecordData::Addr(IpAddr::V4(Ipv4Addr::from(octets)))
            }
            (CLASS_IN, TYPE_AAAA) => {
                let octets: [u8; 16] = rdata
                    .try_into()
                    .map_err(|_| WireError::RecordLength("AAAA"))?;
                RecordData::Addr(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            (CLASS_IN, TYPE_CNAME) => {
                // The target may point anywhere earlier in the packet, but must
                // itself end within the record's data.
                let (target, end) = read_name(self.packet, start)?;
                if end != start + len {
                    return Err(WireError::RecordLength("CNAME"));
                }
                RecordData::Cname(target)
            }
            _ => RecordData::Other,
        };
        Ok(Record { owner, ttl, data })
    }
}

/// The name starting at `pos`, and where its in-place part ends.
pub(super) fn read_name(packet: &[u8], mut pos: usize) -> Result<(Name, usize), WireError> {
    let mut wire = Vec::new();
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = *packet.get(pos).ok_or(WireError::Short("a name"))?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                wire.push(0);
                let end = end.unwrap_or(pos + 1);
                return Ok((Name(wire), end));
            }
            0x00 => {
                let label = packet
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(WireError::Short("a name"))?;
                // Room for this label and the root label after it.
                if wire.len() + label.len() + 2 > MAX_NAME_LEN {
                    return Err(WireError::NameTooLong);
                }
                wire.push(len);
                wire.extend(label.iter().map(u8::to_ascii_lowercase));
                pos += 1 + usize::from(len);
            }
            0xc0 => {
                let low = *packet.get(pos + 1).ok_or(WireError::Short("a name"))?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                end.get_or_insert(pos + 2);
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(WireError::TooManyPointers);
                }
                // Strictly backwards: every chain of pointers ends.
                if target >= pos {
                    return Err(WireError::BadPointer);
                }
                pos = target;
            }
            _ => return Err(WireError::LabelType(len & 0xc0)),
        }
    }
}
