//! The little DER the stand-ins need: walking a certificate, appending an extension to a
//! TBSCertificate, and wrapping a signed TBS into a certificate. Lengths up to 2^32.

/// One TLV: (tag, header length, total length) at the start of `data`.
pub fn tlv(data: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *data.first()?;
    let first = *data.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    (header + len <= data.len()).then_some((tag, header, header + len))
}

/// The children of a constructed TLV's content.
pub fn children(content: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (_, _, total) = tlv(rest)?;
        out.push(&rest[..total]);
        rest = &rest[total..];
    }
    Some(out)
}

/// The content of a TLV (without its header).
pub fn content(element: &[u8]) -> Option<&[u8]> {
    let (_, header, total) = tlv(element)?;
    Some(&element[header..total])
}

pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// TBSCertificate of a DER certificate.
pub fn tbs(cert: &[u8]) -> Option<&[u8]> {
    children(content(cert)?)?.first().copied()
}

/// SubjectPublicKeyInfo of a DER certificate (v3: after version, serial, algorithm, issuer,
/// validity and subject).
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    children(content(tbs(cert)?)?)?.get(6).copied()
}

/// The TBS with one more extension `{oid, critical: false, value}` at the end of its list.
pub fn append_extension(tbs: &[u8], oid_der: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    let ext = encode(0x30, &[oid_der, &encode(0x04, value)].concat());
    let mut parts: Vec<Vec<u8>> = children(content(tbs)?)?
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let last = parts.last_mut()?;
    if last.first() != Some(&0xa3) {
        return None;
    }
    let list = content(content(last)?)?;
    *last = encode(0xa3, &encode(0x30, &[list, &ext].concat()));
    Some(encode(0x30, &parts.concat()))
}

/// `SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING sig }`.
pub fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
    const ECDSA_SHA256: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
    ];
    let bits = encode(0x03, &[&[0u8][..], signature].concat());
    encode(0x30, &[tbs, ECDSA_SHA256, &bits].concat())
}

/// DER of an OBJECT IDENTIFIER.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut chunk = vec![(a & 0x7f) as u8];
        let mut v = a >> 7;
        while v > 0 {
            chunk.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    encode(0x06, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_and_lengths() {
        assert_eq!(
            oid(&[1, 2, 840, 10045, 4, 3, 2])[2..],
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        );
        let long = encode(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(tlv(&long), Some((0x04, 4, 304)));
    }
}
