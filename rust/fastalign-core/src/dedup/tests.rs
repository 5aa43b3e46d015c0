use super::*;
use proptest::prelude::*;

fn shingling() -> Shingling {
    Shingling {
        num_perm: 64,
        ngram: 3,
        unit: Unit::Word,
        normalize: Normalize::ALL,
        seed: 7,
    }
}

/// `n` documents over a small vocabulary, every third one an edited copy of an earlier one.
fn corpus(n: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut docs: Vec<Vec<String>> = Vec::new();
    for i in 0..n {
        if i % 3 == 2 {
            let mut d = docs[next() % docs.len()].clone();
            let edits = next() % 4;
            for _ in 0..edits {
                let k = next() % d.len();
                d[k] = format!("w{}", next() % 500);
            }
            docs.push(d);
        } else {
            let len = 5 + next() % 30;
            docs.push((0..len).map(|_| format!("w{}", next() % 500)).collect());
        }
    }
    docs.into_iter().map(|d| d.join(" ")).collect()
}

fn refs(texts: &[String]) -> Vec<&str> {
    texts.iter().map(String::as_str).collect()
}

#[test]
fn identical_documents_cluster_and_unrelated_ones_do_not() {
    let texts = [
        "the quick brown fox jumps over the lazy dog",
        "completely different words are here now",
        "The quick brown fox, jumps over the LAZY dog!",
        "",
        "   ",
    ];
    let sk = sketch(&texts, &shingling(), true).expect("sketch");
    assert_eq!(sk.empty, [false, false, false, true, true]);
    for verify in [Verify::None, Verify::MinHash, Verify::Exact] {
        let b = Banding::new(0.8, 64, None, verify).expect("banding");
        let c = cluster(&sk, b).expect("cluster");
        assert_eq!(c.cluster, [0, 1, 0, 3, 4], "{verify:?}");
        assert_eq!(c.pairs, [[0, 2]]);
        assert_eq!(c.similarity, [1.0]);
    }
    let (e, empty) = exact(&texts, Normalize::ALL).expect("exact");
    assert_eq!(e.cluster, [0, 1, 0, 3, 3]);
    assert_eq!(empty, [false, false, false, true, true]);
    let (e, empty) = exact(&texts, Normalize::NONE).expect("exact");
    assert_eq!(e.cluster, [0, 1, 2, 3, 4]);
    assert_eq!(empty, [false, false, false, true, false]);
}

#[test]
fn exact_verification_rejects_what_the_threshold_rejects() {
    let texts = corpus(600, 1);
    let sk = sketch(&refs(&texts), &shingling(), true).expect("sketch");
    let sets = sk.sets.as_ref().expect("sets");
    let c = cluster(&sk, Banding::new(0.6, 64, None, Verify::Exact).expect("b")).expect("c");
    let jac = c.jaccard.as_ref().expect("exact similarities");
    assert!(!c.pairs.is_empty());
    for (p, &j) in c.pairs.iter().zip(jac) {
        let want = minhash::jaccard_sorted(&sets[p[0] as usize], &sets[p[1] as usize]);
        assert_eq!(j, want);
        assert!(j >= 0.6);
    }
    // every non-singleton member is joined by at least one verified pair
    for (i, &root) in c.cluster.iter().enumerate() {
        if root as usize != i {
            assert!(c
                .pairs
                .iter()
                .any(|p| p[1] as usize == i || p[0] as usize == i));
        }
    }
}

#[test]
fn thread_count_does_not_change_anything() {
    let texts = corpus(900, 2);
    let run = |threads| {
        crate::sys::with_threads(Some(threads), || {
            let sk = sketch(&refs(&texts), &shingling(), true)?;
            let mut out = Vec::new();
            for verify in [Verify::None, Verify::MinHash, Verify::Exact] {
                out.push(cluster(&sk, Banding::new(0.7, 64, None, verify)?)?);
            }
            Ok((sk.sigs, out))
        })
        .expect("run")
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn saved_index_loads_to_the_same_index() {
    let texts = corpus(300, 3);
    let b = Banding::new(0.7, 64, None, Verify::MinHash).expect("b");
    let mut index = Index::new(shingling(), b).expect("index");
    index.add(&refs(&texts)).expect("add");
    let bytes = index.to_bytes();
    let mut back = Index::from_bytes(&bytes).expect("load");
    assert_eq!(back.clusters(), index.clusters());
    assert_eq!(back.signatures(), index.signatures());
    assert_eq!(back.shingling, index.shingling);
    assert!(Index::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(Index::from_bytes(b"not an index at all, sorry").is_err());
    // any flipped bit (the seed, a signature, the checksum itself) is refused by name
    for at in [8 + 2 * 8, bytes.len() / 2, bytes.len() - 1] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        let err = Index::from_bytes(&flipped).expect_err("a flipped bit");
        assert!(err.to_string().contains("checksum"), "{err}");
    }
    // a threshold of 0 is no index the API makes
    let mut zero = bytes.clone();
    zero[8 + 6 * 8..8 + 7 * 8].copy_from_slice(&0.0f64.to_le_bytes());
    let err = Index::from_bytes(&zero).expect_err("threshold 0");
    assert!(err.to_string().contains("threshold"), "{err}");
    // version 1 files (no checksum) still load
    let mut v1 = bytes[..bytes.len() - 8].to_vec();
    v1[..8].copy_from_slice(b"FALSHIX1");
    assert_eq!(
        Index::from_bytes(&v1).expect("v1").clusters(),
        index.clusters()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The streaming index gives the batch clusters, for any split of the stream; its keep
    /// flags say "no earlier near-duplicate" and agree with its candidates.
    #[test]
    fn index_equals_batch_for_any_split(
        seed in 0u64..1000,
        cuts in prop::collection::vec(0usize..240, 0..5),
        minhash_verify: bool,
    ) {
        let texts = corpus(240, seed);
        let verify = if minhash_verify { Verify::MinHash } else { Verify::None };
        let b = Banding::new(0.6, 64, None, verify).expect("banding");
        let sk = sketch(&refs(&texts), &shingling(), false).expect("sketch");
        let batch = cluster(&sk, b).expect("cluster");
        let mut cuts = cuts;
        cuts.extend([0, texts.len()]);
        cuts.sort_unstable();
        let mut index = Index::new(shingling(), b).expect("index");
        let mut keep = Vec::new();
        for w in cuts.windows(2) {
            keep.extend(index.add(&refs(&texts[w[0]..w[1]])).expect("add"));
        }
        prop_assert_eq!(index.clusters(), batch.cluster.clone());
        // a kept document is the first of its cluster or joined it only through later ones
        for (i, &k) in keep.iter().enumerate() {
            if batch.cluster[i] as usize == i {
                prop_assert!(k);
            }
        }
        // querying the full index finds each document itself
        let m = index.query(&refs(&texts)).expect("query");
        for q in 0..texts.len() {
            if sk.empty[q] { continue; }
            let ids = &m.ids[m.offsets[q] as usize..m.offsets[q + 1] as usize];
            prop_assert!(ids.contains(&(q as u32)));
        }
    }
}

#[test]
fn signing_and_clustering_stop_when_cancelled() {
    use crate::cancel::testing::{cancel_after, polled_stop_after};
    use crate::cancel::Token;
    use std::time::Duration;
    let texts = corpus(300, 5);
    let t = refs(&texts);
    let sh = shingling();
    let plain = sketch(&t, &sh, true).expect("sketch");
    let token = Token::new();
    let again = token.scope(|| sketch(&t, &sh, true)).expect("sketch");
    assert_eq!((&again.sigs, &again.sets), (&plain.sigs, &plain.sets)); // the same bits
    let bandings: Vec<Banding> = [Verify::None, Verify::MinHash, Verify::Exact]
        .into_iter()
        .map(|v| Banding::new(0.5, 64, None, v).expect("banding"))
        .collect();
    for &b in &bandings {
        assert_eq!(token.scope(|| cluster(&plain, b)), cluster(&plain, b));
    }
    token.cancel();
    for keep_sets in [false, true] {
        let out = token.scope(|| sketch(&t, &sh, keep_sets));
        assert!(matches!(out, Err(Error::Interrupted)), "{keep_sets}");
    }
    for &b in &bandings {
        assert_eq!(token.scope(|| cluster(&plain, b)), Err(Error::Interrupted));
    }
    // stopped while it runs (a million documents: seconds), by a cancel or by the poll
    let many: Vec<&str> = t.iter().copied().cycle().take(1_000_000).collect();
    let (out, late) = cancel_after(Duration::from_millis(50), || sketch(&many, &sh, false));
    assert!(matches!(out, Err(Error::Interrupted)));
    assert!(late < Duration::from_secs(1), "{late:?}");
    let (out, late, _) = polled_stop_after(Duration::from_millis(80), || sketch(&many, &sh, false));
    assert!(matches!(out, Err(Error::Interrupted)));
    assert!(late < Duration::from_secs(1), "{late:?}");
}
