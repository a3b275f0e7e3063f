//! Where two byte rows first and last differ: what a compared copy (TRANSFER_TO_HOST_2D into
//! a resource that may hold most of the row already) copies, and what it reports as changed.

/// Compared in blocks first: a block compare is a memcmp, a byte loop is not.
const DIFF_BLOCK: usize = 64;

/// The index of the first byte where `a` and `b` differ (same lengths).
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let blocks = a.chunks(DIFF_BLOCK).zip(b.chunks(DIFF_BLOCK));
    for (i, (x, y)) in blocks.enumerate() {
        if x != y {
            let within = x.iter().zip(y).position(|(p, q)| p != q)?;
            return Some(i * DIFF_BLOCK + within);
        }
    }
    None
}

/// The index of the last byte where `a` and `b` differ (same lengths).
pub(crate) fn last_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let blocks = a.rchunks(DIFF_BLOCK).zip(b.rchunks(DIFF_BLOCK));
    for (i, (x, y)) in blocks.enumerate() {
        if x != y {
            let within = x.iter().zip(y).rposition(|(p, q)| p != q)?;
            // Chunk i from the end starts there (the last one, shorter, at 0).
            return Some(a.len().saturating_sub((i + 1) * DIFF_BLOCK) + within);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_difference_match_a_byte_by_byte_scan() {
        // Lengths around the block size, differences at every position (and pairs of them).
        for len in [1usize, 2, 63, 64, 65, 127, 128, 130, 7680] {
            let a: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            assert_eq!(first_difference(&a, &a), None, "len {len}");
            assert_eq!(last_difference(&a, &a), None, "len {len}");
            let positions: Vec<usize> = if len > 200 {
                vec![0, 1, 63, 64, 4095, 4096, len - 65, len - 64, len - 1]
            } else {
                (0..len).collect()
            };
            for &p in &positions {
                for &q in &positions {
                    if q < p {
                        continue;
                    }
                    let mut b = a.clone();
                    b[p] ^= 0x80;
                    b[q] ^= 0x01;
                    assert_eq!(first_difference(&a, &b), Some(p), "len {len} at {p},{q}");
                    assert_eq!(last_difference(&a, &b), Some(q), "len {len} at {p},{q}");
                }
            }
        }
    }
}
