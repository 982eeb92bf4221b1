//! Just enough DER to read back what a certificate says about itself: its subject,
//! its public key and its extensions, each as the raw bytes it was written with.
//!
//! rcgen reads certificates only behind its `x509-parser` feature, which would build
//! eight more crates for the one file grantmux reads back: its own CA. Comparing raw
//! bytes with what grantmux would write for the same key and hosts needs no more than
//! walking tag-length-value triples, so that is all this does.

/// The parts of a certificate a loaded CA is checked on, borrowed from its DER.
#[derive(Debug)]
pub(super) struct Parsed<'a> {
    /// The subject `Name`, tag and length included.
    pub(super) subject: &'a [u8],
    /// The `SubjectPublicKeyInfo`, tag and length included: the form rcgen's
    /// `PublicKeyData::subject_public_key_info` gives for a key.
    pub(super) spki: &'a [u8],
    pub(super) extensions: Vec<Extension<'a>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Extension<'a> {
    /// The OID's contents, e.g. `55 1d 13` for basicConstraints (2.5.29.19).
    pub(super) oid: &'a [u8],
    pub(super) critical: bool,
    /// The contents of the `extnValue` OCTET STRING.
    pub(super) value: &'a [u8],
}

pub(super) const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
pub(super) const OID_NAME_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x1e];

const SEQUENCE: u8 = 0x30;
const BOOLEAN: u8 = 0x01;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
/// `[3] EXPLICIT`: where TBSCertificate keeps its extensions.
const EXTENSIONS: u8 = 0xa3;
/// `[0] EXPLICIT`: the optional version before the serial number.
const VERSION: u8 = 0xa0;

/// Reads `cert` (a DER `Certificate`); `None` if it is not one.
pub(super) fn parse(cert: &[u8]) -> Option<Parsed<'_>> {
    let certificate = Reader(cert).only(SEQUENCE)?;
    let mut tbs = Reader(Reader(certificate).expect(SEQUENCE)?);
    if tbs.peek_tag() == Some(VERSION) {
        tbs.next()?;
    }
    // serialNumber, signature, issuer, validity: not needed.
    for _ in 0..4 {
        tbs.next()?;
    }
    let (_, _, subject) = tbs.next()?;
    let (_, _, spki) = tbs.next()?;
    let mut extensions = Vec::new();
    // Then the optional issuerUniqueID [1] and subjectUniqueID [2], and [3] extensions.
    while let Some((tag, contents, _)) = tbs.next() {
        if tag == EXTENSIONS {
            extensions = read_extensions(Reader(contents).only(SEQUENCE)?)?;
        }
    }
    Some(Parsed {
        subject,
        spki,
        extensions,
    })
}

impl Parsed<'_> {
    pub(super) fn extension(&self, oid: &[u8]) -> Option<&Extension<'_>> {
        self.extensions.iter().find(|e| e.oid == oid)
    }

    /// Whether basicConstraints says `cA: TRUE`. An absent extension or an absent
    /// boolean means not a CA (the boolean's default is FALSE).
    pub(super) fn is_ca(&self) -> bool {
        let Some(ext) = self.extension(OID_BASIC_CONSTRAINTS) else {
            return false;
        };
        let Some(fields) = Reader(ext.value).only(SEQUENCE) else {
            return false;
        };
        matches!(Reader(fields).next(), Some((BOOLEAN, [0xff], _)))
    }
}

fn read_extensions(mut list: &[u8]) -> Option<Vec<Extension<'_>>> {
    let mut out = Vec::new();
    while !list.is_empty() {
        let mut reader = Reader(list);
        let mut ext = Reader(reader.expect(SEQUENCE)?);
        list = reader.0;
        let oid = ext.expect(OID)?;
        let critical = match ext.peek_tag() {
            Some(BOOLEAN) => ext.expect(BOOLEAN)? == [0xff],
            _ => false,
        };
        let value = ext.expect(OCTET_STRING)?;
        out.push(Extension {
            oid,
            critical,
            value,
        });
    }
    Some(out)
}

/// A cursor over consecutive DER elements.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element as (tag, contents, the whole element), moving past it.
    fn next(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let input = self.0;
        let (&tag, rest) = input.split_first()?;
        // Multi-byte tags never occur in a certificate's structure.
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = match first {
            0..=0x7f => (usize::from(first), rest),
            // 0x80 is BER's indefinite length, not DER; more than four bytes of
            // length is no certificate grantmux wrote.
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                let bytes = rest.get(..n)?;
                let len = bytes
                    .iter()
                    .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
                (len, &rest[n..])
            }
            _ => return None,
        };
        let contents = rest.get(..len)?;
        let whole_len = input.len() - rest.len() + len;
        self.0 = &rest[len..];
        Some((tag, contents, &input[..whole_len]))
    }

    /// The next element's contents if it has `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, contents, _) if t == tag => Some(contents),
            _ => None,
        }
    }

    /// The contents of the one element the input holds, which must have `tag`.
    fn only(mut self, tag: u8) -> Option<&'a [u8]> {
        let contents = self.expect(tag)?;
        self.0.is_empty().then_some(contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_short_and_long_and_truncated() {
        let mut r = Reader(&[0x04, 0x02, 0xaa, 0xbb, 0x05, 0x00]);
        assert_eq!(
            r.next(),
            Some((0x04, &[0xaa, 0xbb][..], &[0x04, 0x02, 0xaa, 0xbb][..]))
        );
        assert_eq!(r.next(), Some((0x05, &[][..], &[0x05, 0x00][..])));
        assert_eq!(r.next(), None);

        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let (_, contents, whole) = Reader(&long).next().expect("long form");
        assert_eq!((contents.len(), whole.len()), (0x80, 0x83));

        assert_eq!(
            Reader(&[0x04, 0x03, 0xaa]).next(),
            None,
            "runs past the end"
        );
        assert_eq!(Reader(&[0x30, 0x80, 0x00, 0x00]).next(), None, "indefinite");
        assert_eq!(Reader(&[0x04, 0x85, 0, 0, 0, 0, 1]).next(), None);
        assert!(parse(&[0x30, 0x00]).is_none());
        assert!(parse(b"not der at all").is_none());
    }
}
